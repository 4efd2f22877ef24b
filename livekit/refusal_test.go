package livekit_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"
	lk "github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"

	"github.com/entente-org/entente/livekit"
)

func mintWith(t *testing.T, key, secret, room, identity string, ttl time.Duration) string {
	t.Helper()
	if ttl < 0 {
		// auth.AccessToken replaces a validity that is not positive with
		// its default, so an expired token is signed here.
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": key, "sub": identity, "nbf": time.Now().Add(2 * ttl).Unix(), "exp": time.Now().Add(ttl).Unix(),
			"video": map[string]any{"roomJoin": true, "room": room},
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tok, err := auth.NewAccessToken(key, secret).SetIdentity(identity).SetValidFor(ttl).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: room}).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Every refusal of a connection names what was wrong, at /rtc (before the
// WebSocket opens) and at /rtc/validate alike, and the node keeps serving.
func TestLiveKitRefusals(t *testing.T) {
	e := newEnv(t)
	e.members.allow("conf-a", "bob", true)
	good := e.token(t, "conf-a", "bob")
	noJoin, err := auth.NewAccessToken(apiKey, apiSecret).SetIdentity("bob").SetValidFor(time.Hour).
		SetVideoGrant(&auth.VideoGrant{Room: "conf-a"}).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, query string
		status      int
		message     string
	}{
		{"valid", "protocol=17&access_token=" + good, http.StatusOK, "success"},
		{"protocol too old", "protocol=8&access_token=" + good, http.StatusBadRequest, "LiveKit signalling protocol 8 is too old: this server speaks protocol 15 or newer"},
		{"protocol missing", "access_token=" + good, http.StatusBadRequest, "protocol parameter missing"},
		{"protocol not a number", "protocol=x&access_token=" + good, http.StatusBadRequest, `protocol parameter "x" is not a number`},
		{"no token", "protocol=17", http.StatusUnauthorized, "no access token"},
		{"not a JWT", "protocol=17&access_token=garbage", http.StatusUnauthorized, "access token is not a JWT"},
		{"unknown key", "protocol=17&access_token=" + mintWith(t, "APIother", apiSecret, "conf-a", "bob", time.Hour), http.StatusUnauthorized, `access token signed with unknown API key "APIother"`},
		{"wrong secret", "protocol=17&access_token=" + mintWith(t, apiKey, strings.Repeat("z", 40), "conf-a", "bob", time.Hour), http.StatusUnauthorized, "access token refused: token signature is invalid"},
		{"expired", "protocol=17&access_token=" + mintWith(t, apiKey, apiSecret, "conf-a", "bob", -time.Hour), http.StatusUnauthorized, "access token refused: token has invalid claims: token is expired"},
		{"another conference", "protocol=17&access_token=" + e.token(t, "conf-b", "bob"), http.StatusForbidden, "not a participant of conference conf-b"},
		{"no roomJoin", "protocol=17&access_token=" + noJoin, http.StatusForbidden, "access token does not grant roomJoin"},
		{"foreign identity", "protocol=17&access_token=" + e.token(t, "conf-a", "foreigner"), http.StatusForbidden, `identity "foreigner": not a user of this node`},
		{"single peer connection", "protocol=17&join_request=AAAA&access_token=" + good, http.StatusBadRequest, "single peer connection mode (join_request) is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(e.srv.URL + "/rtc/validate?" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.message) {
				t.Fatalf("validate: %d %q, want %d containing %q", resp.StatusCode, body, tc.status, tc.message)
			}
			if tc.status == http.StatusOK {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ws, resp, err := websocket.Dial(ctx, e.wsURL()+"/rtc?"+tc.query, nil)
			if err == nil {
				ws.CloseNow()
				t.Fatal("/rtc accepted the connection")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("/rtc answered %v, want %d", resp, tc.status)
			}
		})
	}
}

// A frame that is not a SignalRequest is answered with a RequestResponse
// naming the fault; the session carries on and answers a ping.
func TestLiveKitMalformedSignalRequest(t *testing.T) {
	e := newEnv(t)
	e.members.allow("conf-a", "bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, e.wsURL()+"/rtc?protocol=16&access_token="+e.token(t, "conf-a", "bob"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	next := func() *lk.SignalResponse {
		t.Helper()
		typ, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("frame type %v, want binary", typ)
		}
		m := &lk.SignalResponse{}
		if err := proto.Unmarshal(data, m); err != nil {
			t.Fatalf("response is not a SignalResponse: %v", err)
		}
		return m
	}
	join := next().GetJoin()
	if join == nil || join.Room.GetName() != "conf-a" || join.Participant.GetIdentity() != "bob" ||
		join.Participant.GetAttributes()[livekit.AttrOrganisation] != "Ministry of Tests" ||
		join.GetServerInfo().GetProtocol() != 16 || join.SubscriberPrimary {
		t.Fatalf("first response is not the expected JoinResponse: %v", join)
	}
	if err := ws.Write(ctx, websocket.MessageBinary, []byte{0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	rr := next().GetRequestResponse()
	if rr == nil || rr.Reason != lk.RequestResponse_NOT_ALLOWED || !strings.HasPrefix(rr.Message, "malformed SignalRequest: ") {
		t.Fatalf("malformed frame answered with %v", rr)
	}
	ping, _ := proto.Marshal(&lk.SignalRequest{Message: &lk.SignalRequest_Ping{Ping: 4242}})
	if err := ws.Write(ctx, websocket.MessageBinary, ping); err != nil {
		t.Fatal(err)
	}
	if pong := next(); pong.GetPong() != 4242 {
		t.Fatalf("ping answered with %v", pong)
	}
	req, _ := proto.Marshal(&lk.SignalRequest{Message: &lk.SignalRequest_PingReq{PingReq: &lk.Ping{Timestamp: 77}}})
	if err := ws.Write(ctx, websocket.MessageBinary, req); err != nil {
		t.Fatal(err)
	}
	if pong := next().GetPongResp(); pong == nil || pong.LastPingTimestamp != 77 {
		t.Fatalf("ping request answered with %v", pong)
	}
}

// A token without canPublish lets its holder join and listen, not publish.
func TestLiveKitTokenWithoutCanPublish(t *testing.T) {
	e := newEnv(t)
	e.members.allow("conf-a", "bob", true)
	no := false
	tok, err := auth.NewAccessToken(apiKey, apiSecret).SetIdentity("bob").SetValidFor(time.Hour).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: "conf-a", CanPublish: &no}).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, e.wsURL()+"/rtc?protocol=17&access_token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	read := func() *lk.SignalResponse {
		t.Helper()
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := &lk.SignalResponse{}
		if err := proto.Unmarshal(data, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	join := read().GetJoin()
	if join == nil || join.Participant.GetPermission().GetCanPublish() || !join.Participant.GetPermission().GetCanSubscribe() {
		t.Fatalf("JoinResponse permission %v, want subscribe only", join.GetParticipant().GetPermission())
	}
	add, _ := proto.Marshal(&lk.SignalRequest{Message: &lk.SignalRequest_AddTrack{AddTrack: &lk.AddTrackRequest{Cid: "mic", Type: lk.TrackType_AUDIO}}})
	if err := ws.Write(ctx, websocket.MessageBinary, add); err != nil {
		t.Fatal(err)
	}
	if rr := read().GetRequestResponse(); rr == nil || rr.Message != "the access token does not grant canPublish" {
		t.Fatalf("AddTrack without canPublish answered with %v", rr)
	}
}

// A page of another origin (a LiveKit front end served elsewhere) may open
// the WebSocket and read /rtc/validate's answer.
func TestLiveKitAcceptsOtherOrigins(t *testing.T) {
	e := newEnv(t)
	e.members.allow("conf-a", "bob", true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := "?protocol=16&access_token=" + e.token(t, "conf-a", "bob")
	h := http.Header{"Origin": []string{"https://meet.example.org"}}
	ws, _, err := websocket.Dial(ctx, e.wsURL()+"/rtc"+q, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("cross-origin WebSocket refused: %v", err)
	}
	ws.CloseNow()
	req, _ := http.NewRequest("GET", e.srv.URL+"/rtc/validate"+q, nil)
	req.Header.Set("Origin", "https://meet.example.org")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("validate: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// The single-peer-connection path answers 404, readable from any origin,
// so that livekit-client falls back to /rtc.
func TestLiveKitV1PathNotFound(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/rtc/v1", "/rtc/v1/validate"} {
		resp, err := http.Get(e.srv.URL + path + "?access_token=x&join_request=AAAA")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(string(body), "single peer connection signalling (/rtc/v1) is not supported: connect at /rtc") {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
}
