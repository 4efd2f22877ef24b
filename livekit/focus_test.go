package livekit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekit/protocol/auth"
	lk "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/bridge"
	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/dendritetest"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/internal/testwait"
	"github.com/entente-org/entente/livekit"
)

// focusLifetime is how long the test homeserver's OpenID tokens last:
// short, so that one of them expires within the test.
const focusLifetime = 10 * time.Second

// Element Call's focus on a node, against a real Dendrite: Mona, in the
// conference's Matrix room, trades an OpenID token for a LiveKit URL and
// token (the legacy /sfu/get and MSC4195's /get_token), joins the call with
// LiveKit's Go SDK, hears the native participant byte for byte and is heard,
// and other LiveKit clients see her under the identity Element Call
// expects, "@mona:localhost:MONADEV". Nina, who is not in the room, a
// forged token, an expired token and a room that is no portal are refused
// with exact Matrix errors. The ghosts' call memberships name the focus.
func TestElementCallFocus(t *testing.T) {
	const wait = 30 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	listen := dendritetest.FreeAddr(t)
	reg, err := bridge.NewRegistration(bridge.RegistrationOptions{URL: "http://" + listen, HomeserverDomain: dendritetest.ServerName, BotLocalpart: "entente"})
	if err != nil {
		t.Fatal(err)
	}
	regFile := filepath.Join(dir, "registration.yaml")
	if err := bridge.WriteRegistration(regFile, reg, false); err != nil {
		t.Fatal(err)
	}
	hs := dendritetest.Start(t, regFile, dendritetest.OpenIDTokenLifetime(focusLifetime))
	f := nodetest.New(t)
	trustCA(t, f)
	n := f.Start(t, "Ministry", func(c *config.Config) {
		c.LiveKit = config.NewLiveKitCredentials()
		c.Bridge = config.Bridge{
			Enabled: true, HomeserverURL: hs.URL, HomeserverDomain: dendritetest.ServerName, Listen: listen,
			Registration: regFile, BotLocalpart: "entente", GhostPrefix: "entente_",
			OpenIDServerName: dendritetest.ServerName, OpenIDBaseURL: hs.URL, LiveKitFocus: true,
		}
	})
	focusURL := n.PublicURL() + "/livekit/jwt"
	if n.FocusURL() != focusURL {
		t.Fatalf("focus URL %q, want %q", n.FocusURL(), focusURL)
	}
	hc := f.Client()
	post := func(path string, body any) (int, string) {
		t.Helper()
		data, _ := json.Marshal(body)
		resp, err := hc.Post(focusURL+path, "application/json", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s answered without Access-Control-Allow-Origin: *", path)
		}
		return resp.StatusCode, strings.TrimSpace(string(out))
	}
	if resp, err := hc.Get(focusURL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}

	// Alice hosts the conference; Mona's room is its portal.
	alice, aliceTok := nodetest.User(t, n, "alice", "Alice")
	carol, carolTok := nodetest.User(t, n, "carol", "Carol")
	conf, err := n.Federation().CreateConference(ctx, alice, "Element Call", nil)
	if err != nil {
		t.Fatal(err)
	}
	mona, nina := hs.User(ctx, "mona"), hs.User(ctx, "nina")
	room, err := mona.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Element Call",
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{
			mona.UserID: 100, id.NewUserID("entente", dendritetest.ServerName): 100,
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mona.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: id.NewUserID("entente", dendritetest.ServerName)}); err != nil {
		t.Fatal(err)
	}
	if err := n.Bridge().LinkRoom(ctx, conf.ID, room.RoomID.String()); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		name string
		join func() error
	}{
		{"alice", func() error { _, _, err := n.Federation().Join(ctx, alice, conf.ID); return err }},
		{"carol", func() error { _, _, err := n.Federation().Join(ctx, carol, conf.ID); return err }},
	} {
		if err := u.join(); err != nil {
			t.Fatalf("%s joins: %v", u.name, err)
		}
	}
	// A token requested now is checked again at the end of the test, once
	// it has expired.
	early, err := mona.RequestOpenIDToken(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The ghosts' call memberships name the focus, with the room as alias.
	nodetest.Eventually(t, wait, "a ghost's call membership naming the focus", func() bool {
		state, err := mona.State(ctx, room.RoomID)
		if err != nil {
			return false
		}
		for typ, evts := range state {
			if typ.Type != "org.matrix.msc3401.call.member" {
				continue
			}
			for _, evt := range evts {
				foci, _ := evt.Content.Raw["foci_preferred"].([]any)
				if len(foci) != 1 {
					continue
				}
				want := map[string]any{"type": "livekit", "livekit_service_url": focusURL, "livekit_alias": room.RoomID.String()}
				got, _ := foci[0].(map[string]any)
				if len(got) == 3 && got["type"] == want["type"] && got["livekit_service_url"] == want["livekit_service_url"] && got["livekit_alias"] == want["livekit_alias"] {
					return true
				}
			}
		}
		return false
	})

	openID := func(c *mautrix.Client) map[string]any {
		t.Helper()
		tok, err := c.RequestOpenIDToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"access_token": tok.AccessToken, "token_type": tok.TokenType,
			"matrix_server_name": tok.MatrixServerName, "expires_in": tok.ExpiresIn}
	}
	mxError := func(code, msg string) string {
		b, _ := json.Marshal(map[string]string{"errcode": code, "error": msg})
		return string(b)
	}

	// Refusals, each with its exact body.
	forgedTok := map[string]any{"access_token": "forged", "token_type": "Bearer", "matrix_server_name": "localhost", "expires_in": 3600}
	refusals := []struct {
		name, path string
		body       any
		status     int
		want       string
	}{
		{"not in the room", "/sfu/get", map[string]any{"room": room.RoomID.String(), "openid_token": openID(nina), "device_id": "NINADEV"},
			403, mxError("M_FORBIDDEN", "@nina:localhost is not joined to room "+room.RoomID.String())},
		{"forged token", "/sfu/get", map[string]any{"room": room.RoomID.String(), "openid_token": forgedTok, "device_id": "MONADEV"},
			401, mxError("M_UNAUTHORIZED", "the Matrix OpenID token is invalid or expired; request a new one from your homeserver")},
		{"another homeserver", "/sfu/get", map[string]any{"room": room.RoomID.String(), "device_id": "MONADEV",
			"openid_token": map[string]any{"access_token": "x", "matrix_server_name": "elsewhere.example"}},
			401, mxError("M_UNAUTHORIZED", "this node accepts Matrix users of localhost only")},
		{"no portal", "/sfu/get", map[string]any{"room": "!nowhere:localhost", "openid_token": openID(mona), "device_id": "MONADEV"},
			404, mxError("M_NOT_FOUND", "room !nowhere:localhost is not the Matrix room of a conference of this node")},
		{"no device", "/sfu/get", map[string]any{"room": room.RoomID.String(), "openid_token": forgedTok},
			400, mxError("M_BAD_JSON", "Missing device_id parameter")},
		{"not an object", "/sfu/get", "{", 400, mxError("M_NOT_JSON", "Error reading request")},
		{"claims another user", "/get_token", map[string]any{"room_id": room.RoomID.String(), "slot_id": "m.call#ROOM", "openid_token": openID(mona),
			"member": map[string]string{"id": "m1", "claimed_user_id": "@nina:localhost", "claimed_device_id": "MONADEV"}},
			401, mxError("M_UNAUTHORIZED", "the OpenID token belongs to @mona:localhost, not to claimed_user_id @nina:localhost")},
	}
	for _, r := range refusals {
		code, body := post(r.path, r.body)
		if code != r.status || body != r.want {
			t.Errorf("%s: %d %s\nwant %d %s", r.name, code, body, r.status, r.want)
		}
	}

	// Mona gets her credentials from the legacy endpoint.
	code, body := post("/sfu/get", map[string]any{"room": room.RoomID.String(), "openid_token": openID(mona), "device_id": "MONADEV"})
	var creds struct{ URL, JWT string }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &creds) != nil {
		t.Fatalf("/sfu/get for Mona: %d %s", code, body)
	}
	wantURL := strings.Replace(n.PublicURL(), "https://", "wss://", 1)
	key, secret, _ := n.LiveKitCredentials()
	grants := verifyJWT(t, creds.JWT, key, secret)
	const monaIdentity = "@mona:localhost:MONADEV"
	if creds.URL != wantURL || grants.Identity != monaIdentity || grants.Video.Room != conf.ID || !grants.Video.RoomJoin {
		t.Fatalf("Mona's credentials: url %q, identity %q, room %q", creds.URL, grants.Identity, grants.Video.Room)
	}
	monaUser := grants.Attributes[livekit.AttrUser]
	if !strings.HasSuffix(monaUser, "@"+n.DID()) || !strings.HasPrefix(monaUser, accounts.MatrixGuestPrefix) {
		t.Fatalf("Mona's token stands for %q, want her Matrix guest of this node", monaUser)
	}
	roster, err := n.Federation().LocalRoster(ctx, conf.ID)
	if err != nil {
		t.Fatal(err)
	}
	inRoster := false
	for _, p := range roster.Participants {
		inRoster = inRoster || (p.User == monaUser && p.DisplayName == "@mona:localhost" && p.Organisation == "localhost (Matrix)")
	}
	if !inRoster {
		t.Fatalf("Mona is not a Matrix guest participant: %+v", roster.Participants)
	}

	// MSC4195's endpoint: the identity is the hash Element Call computes.
	code, body = post("/get_token", map[string]any{"room_id": room.RoomID.String(), "slot_id": "m.call#ROOM", "openid_token": openID(mona),
		"member": map[string]string{"id": "member-1", "claimed_user_id": "@mona:localhost", "claimed_device_id": "MONADEV"}})
	var creds2 struct{ URL, JWT string }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &creds2) != nil {
		t.Fatalf("/get_token for Mona: %d %s", code, body)
	}
	ids, _ := json.Marshal([]string{"@mona:localhost", "MONADEV", "member-1"})
	sum := sha256.Sum256(ids)
	if g := verifyJWT(t, creds2.JWT, key, secret); g.Identity != base64.RawStdEncoding.EncodeToString(sum[:]) || g.Attributes[livekit.AttrUser] != monaUser {
		t.Fatalf("/get_token identity %q for %q", g.Identity, g.Attributes[livekit.AttrUser])
	}

	// Alice speaks natively; Carol listens with a LiveKit client.
	native := dialNativeURL(t, wantURL+"/api/v1/conferences/"+conf.ID+"/media?access_token="+aliceTok,
		&websocket.DialOptions{HTTPClient: hc}, federation.UserRef("alice", n.DID()))
	eventually(t, "native joined", func() bool { return native.seen("joined", nil) != nil })
	native.publishAudio()
	stop := make(chan struct{})
	defer close(stop)
	sendUntil(t, native.audio.WriteRTP, "alice", stop)

	carolCreds := liveKitToken(t, hc, n.PublicURL(), conf.ID, carolTok)
	carolRoom, err := lksdk.ConnectToRoomWithToken(carolCreds["url"], carolCreds["token"], &lksdk.RoomCallback{})
	if err != nil {
		t.Fatalf("Carol's LiveKit client: %v", err)
	}
	t.Cleanup(carolRoom.Disconnect)

	// Mona joins with the credentials from the focus.
	fromAlice := make(chan []byte, 4096)
	monaRoom, err := lksdk.ConnectToRoomWithToken(creds.URL, creds.JWT, &lksdk.RoomCallback{ParticipantCallback: lksdk.ParticipantCallback{
		OnTrackSubscribed: func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
			go readPayloads(track, fromAlice)
		},
	}})
	if err != nil {
		t.Fatalf("Mona's LiveKit client could not join with the focus's credentials: %v", err)
	}
	t.Cleanup(monaRoom.Disconnect)
	if got := monaRoom.LocalParticipant.Identity(); got != monaIdentity {
		t.Fatalf("Mona's own identity %q, want %q", got, monaIdentity)
	}
	waitPayloads(t, fromAlice, "alice", 20, opusPayload)

	// Mona's client knows Alice under the identity of her ghost's call
	// membership in the room, "<ghost>:<device>", as Element Call pairs them.
	aliceRef := federation.UserRef("alice", n.DID())
	aliceIdentity := n.Bridge().CallIdentity(aliceRef)
	at := strings.LastIndex(aliceIdentity, ":")
	memberKey := "_" + aliceIdentity[:at] + "_" + aliceIdentity[at+1:] + "_m.call"
	var member map[string]any
	if err := mona.StateEvent(ctx, room.RoomID, event.Type{Type: "org.matrix.msc3401.call.member", Class: event.StateEventType}, memberKey, &member); err != nil || member["device_id"] != aliceIdentity[at+1:] {
		t.Fatalf("no call membership %s in the room for identity %s: %v %v", memberKey, aliceIdentity, member, err)
	}
	eventually(t, "Mona sees Alice under her ghost's identity", func() bool {
		rp := monaRoom.GetParticipantByIdentity(aliceIdentity)
		return rp != nil && rp.SID() == aliceRef && rp.Name() == "Alice"
	})

	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mona-audio", "mona-stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := monaRoom.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "mic", Source: lk.TrackSource_MICROPHONE}); err != nil {
		t.Fatalf("Mona publishes: %v", err)
	}
	sendUntil(t, func(p *rtp.Packet) error { return track.WriteRTP(p) }, "mona", stop)
	waitPayloads(t, native.payloads, "mona", 20, opusPayload)

	// Carol's LiveKit client knows Mona by the identity Element Call maps
	// to her call membership and its media keys.
	eventually(t, "Carol sees Mona under her Element Call identity", func() bool {
		rp := carolRoom.GetParticipantByIdentity(monaIdentity)
		return rp != nil && rp.Name() == "@mona:localhost" && rp.Attributes()[livekit.AttrUser] == monaUser
	})

	// Mona hangs up in Element Call: her call membership ends, and with it
	// her part in the conference and her LiveKit session.
	callMember := event.Type{Type: "org.matrix.msc3401.call.member", Class: event.StateEventType}
	monaKey := "_@mona:localhost_MONADEV_m.call"
	if _, err := mona.SendStateEvent(ctx, room.RoomID, callMember, monaKey, map[string]any{
		"application": "m.call", "call_id": "", "scope": "m.room", "device_id": "MONADEV", "expires": 3600000,
		"focus_active":   map[string]any{"type": "livekit", "focus_selection": "oldest_membership"},
		"foci_preferred": []any{map[string]any{"type": "livekit", "livekit_service_url": focusURL, "livekit_alias": room.RoomID.String()}},
		"created_ts":     time.Now().UnixMilli(),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := mona.SendStateEvent(ctx, room.RoomID, callMember, monaKey, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, wait, "Mona out of the conference after leaving the call", func() bool {
		r, err := n.Federation().LocalRoster(ctx, conf.ID)
		if err != nil {
			return false
		}
		for _, p := range r.Participants {
			if p.User == monaUser {
				return false
			}
		}
		return carolRoom.GetParticipantByIdentity(monaIdentity) == nil
	})

	// Once the homeserver no longer vouches for the early token, the focus
	// refuses it like a forged one.
	userinfo := hs.URL + "/_matrix/federation/v1/openid/userinfo?access_token=" + url.QueryEscape(early.AccessToken)
	testwait.Until(t, focusLifetime+time.Minute, func() bool {
		resp, err := http.Get(userinfo)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	}, "the homeserver still vouches for the early OpenID token, issued with a lifetime of %v", focusLifetime)
	code, body = post("/sfu/get", map[string]any{"room": room.RoomID.String(), "device_id": "MONADEV", "openid_token": map[string]any{
		"access_token": early.AccessToken, "token_type": early.TokenType, "matrix_server_name": early.MatrixServerName, "expires_in": early.ExpiresIn}})
	if want := mxError("M_UNAUTHORIZED", "the Matrix OpenID token is invalid or expired; request a new one from your homeserver"); code != 401 || body != want {
		t.Errorf("expired token: %d %s\nwant 401 %s", code, body, want)
	}
}

// verifyJWT checks a LiveKit token with the node's credentials.
func verifyJWT(t *testing.T, raw, key, secret string) *auth.ClaimGrants {
	t.Helper()
	v, err := auth.ParseAPIToken(raw)
	if err != nil {
		t.Fatal(err)
	}
	if v.APIKey() != key {
		t.Fatalf("token issued under %q, want %q", v.APIKey(), key)
	}
	_, g, err := v.Verify(secret)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// liveKitToken gets a LiveKit token from the client API.
func liveKitToken(t *testing.T, hc *http.Client, base, conference, apiToken string) map[string]string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/api/v1/conferences/"+conference+"/livekit-token", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("livekit-token: %d", resp.StatusCode)
	}
	return out
}
