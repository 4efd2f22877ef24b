package livekit_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	lk "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/livekit"
)

// Two organisations: a LiveKit client of the hosting ministry, with a token
// its node minted through the client API, and a native client of the
// agency hear each other byte for byte through the cascade, and the
// LiveKit client sees the agency's participant with its organisation.
func TestLiveKitClientAcrossOrganisations(t *testing.T) {
	const wait = 30 * time.Second
	f := nodetest.New(t)
	trustCA(t, f)
	a := f.Start(t, "Ministry", func(c *config.Config) { c.LiveKit = config.NewLiveKitCredentials() })
	b := f.Start(t, "Agency", nil)
	nodetest.Trust(t, a, b)
	ctx := context.Background()
	alice, aliceTok := nodetest.User(t, a, "alice", "Alice")
	bruno, brunoTok := nodetest.User(t, b, "bruno", "Bruno")
	conf, err := a.Federation().CreateConference(ctx, alice, "LiveKit and native", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Federation().Invite(ctx, alice, conf.ID, b.DID(), nil); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, wait, "invitation", func() bool {
		inv, _ := b.Federation().Invitations(ctx, bruno)
		return len(inv) == 1
	})
	if _, _, err := b.Federation().Answer(ctx, bruno, conf.ID, true); err != nil {
		t.Fatal(err)
	}
	hc := f.Client()
	tokenOf := func(apiToken string) (int, map[string]string) {
		req, _ := http.NewRequest("POST", a.PublicURL()+"/api/v1/conferences/"+conf.ID+"/livekit-token", nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	// Before joining, the conference's media is not Alice's to take.
	if code, _ := tokenOf(aliceTok); code != http.StatusForbidden {
		t.Fatalf("token before joining: %d, want 403", code)
	}
	for _, m := range []struct {
		n *nodetest.Node
		u localuser.User
	}{{a, alice}, {b, bruno}} {
		if _, _, err := m.n.Federation().Join(ctx, m.u, conf.ID); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, wait, "both replicas know both participants", func() bool {
		for _, n := range []*nodetest.Node{a, b} {
			v, _ := n.Federation().ConferenceDetail(ctx, conf.ID)
			if len(v.Participants) != 2 {
				return false
			}
		}
		return true
	})
	code, tok := tokenOf(aliceTok)
	aliceRef := federation.UserRef("alice", a.DID())
	brunoRef := federation.UserRef("bruno", b.DID())
	wantURL := strings.Replace(a.PublicURL(), "https://", "wss://", 1)
	if code != http.StatusOK || tok["url"] != wantURL || tok["room"] != conf.ID || tok["identity"] != aliceRef || tok["token"] == "" {
		t.Fatalf("token endpoint: %d %v", code, tok)
	}

	native := dialNativeURL(t, strings.Replace(b.PublicURL(), "https://", "wss://", 1)+"/api/v1/conferences/"+conf.ID+"/media?access_token="+brunoTok,
		&websocket.DialOptions{HTTPClient: hc}, brunoRef)
	eventually(t, "native joined", func() bool { return native.seen("joined", nil) != nil })
	native.publishAudio()

	fromNative := make(chan []byte, 4096)
	var once sync.Once
	subscribed := make(chan *lksdk.RemoteParticipant, 1)
	room, err := lksdk.ConnectToRoomWithToken(tok["url"], tok["token"], &lksdk.RoomCallback{ParticipantCallback: lksdk.ParticipantCallback{
		OnTrackSubscribed: func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
			once.Do(func() { subscribed <- rp })
			go readPayloads(track, fromNative)
		},
	}})
	if err != nil {
		t.Fatalf("LiveKit client could not connect to the ministry's node: %v", err)
	}
	t.Cleanup(room.Disconnect)

	stop := make(chan struct{})
	defer close(stop)
	sendUntil(t, native.audio.WriteRTP, "bruno", stop)
	select {
	case rp := <-subscribed:
		if rp.Identity() != brunoRef || rp.Name() != "Bruno" || rp.Attributes()[livekit.AttrOrganisation] != "Agency" {
			t.Fatalf("the agency's participant seen as %q %q %v", rp.Identity(), rp.Name(), rp.Attributes())
		}
	case <-time.After(wait):
		t.Fatal("the LiveKit client never subscribed to the agency's track")
	}
	waitPayloads(t, fromNative, "bruno", 20, opusPayload)

	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "lk-audio", "lk-stream")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "mic", Source: lk.TrackSource_MICROPHONE})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	sendUntil(t, func(p *rtp.Packet) error { return track.WriteRTP(p) }, "alice", stop)
	eventually(t, "the agency's client told of the LiveKit track", func() bool {
		return native.seen("track_added", func(m map[string]any) bool { return m["id"] == pub.SID() && m["owner"] == aliceRef }) != nil
	})
	waitPayloads(t, native.payloads, "alice", 20, opusPayload)
}

// A LiveKit identity that is not the user reference (as Element Call's
// focus mints them) crosses the cascade: the agency's LiveKit client sees
// the ministry's participant under it, and hears it byte for byte.
func TestLiveKitIdentityAcrossOrganisations(t *testing.T) {
	const wait = 30 * time.Second
	f := nodetest.New(t)
	trustCA(t, f)
	a := f.Start(t, "Ministry", func(c *config.Config) { c.LiveKit = config.NewLiveKitCredentials() })
	b := f.Start(t, "Agency", func(c *config.Config) { c.LiveKit = config.NewLiveKitCredentials() })
	nodetest.Trust(t, a, b)
	ctx := context.Background()
	alice, _ := nodetest.User(t, a, "alice", "Alice")
	bruno, brunoTok := nodetest.User(t, b, "bruno", "Bruno")
	conf, err := a.Federation().CreateConference(ctx, alice, "Identities", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Federation().Invite(ctx, alice, conf.ID, b.DID(), nil); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, wait, "invitation", func() bool {
		inv, _ := b.Federation().Invitations(ctx, bruno)
		return len(inv) == 1
	})
	if _, _, err := b.Federation().Answer(ctx, bruno, conf.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Federation().Join(ctx, alice, conf.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Federation().Join(ctx, bruno, conf.ID); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, wait, "both replicas know both participants", func() bool {
		for _, n := range []*nodetest.Node{a, b} {
			v, _ := n.Federation().ConferenceDetail(ctx, conf.ID)
			if len(v.Participants) != 2 {
				return false
			}
		}
		return true
	})

	const identity = "@alice:matrix.example:PHONE"
	aliceRef := federation.UserRef("alice", a.DID())
	key, secret, _ := a.LiveKitCredentials()
	tok, err := livekit.MintFor(key, secret, conf.ID, identity, aliceRef, "Alice", "Ministry", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	aRoom, err := lksdk.ConnectToRoomWithToken(a.LiveKitURL(), tok, &lksdk.RoomCallback{})
	if err != nil {
		t.Fatalf("LiveKit client on the ministry's node: %v", err)
	}
	t.Cleanup(aRoom.Disconnect)
	if aRoom.LocalParticipant.Identity() != identity {
		t.Fatalf("own identity %q, want %q", aRoom.LocalParticipant.Identity(), identity)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "a-audio", "a-stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aRoom.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "mic", Source: lk.TrackSource_MICROPHONE}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	sendUntil(t, func(p *rtp.Packet) error { return track.WriteRTP(p) }, "alice", stop)

	heard := make(chan []byte, 4096)
	brunoCreds := liveKitToken(t, f.Client(), b.PublicURL(), conf.ID, brunoTok)
	bRoom, err := lksdk.ConnectToRoomWithToken(brunoCreds["url"], brunoCreds["token"], &lksdk.RoomCallback{ParticipantCallback: lksdk.ParticipantCallback{
		OnTrackSubscribed: func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
			go readPayloads(track, heard)
		},
	}})
	if err != nil {
		t.Fatalf("LiveKit client on the agency's node: %v", err)
	}
	t.Cleanup(bRoom.Disconnect)
	waitPayloads(t, heard, "alice", 20, opusPayload)
	rp := bRoom.GetParticipantByIdentity(identity)
	if rp == nil || rp.SID() != aliceRef || rp.Attributes()[livekit.AttrUser] != aliceRef {
		var seen []string
		for _, p := range bRoom.GetRemoteParticipants() {
			seen = append(seen, p.Identity()+" ("+p.SID()+")")
		}
		t.Fatalf("the agency's LiveKit client does not see %s (sid %s); it sees %v", identity, aliceRef, seen)
	}
}
