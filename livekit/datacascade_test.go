package livekit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	lk "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/livekit"
)

// dataSeen is one data packet a LiveKit client received.
type dataSeen struct {
	from, topic, payload string
	chat                 *lk.ChatMessage
}

// dataRoom connects a LiveKit client and collects the data packets it
// receives.
func dataRoom(t *testing.T, url, token string) (*lksdk.Room, chan dataSeen) {
	t.Helper()
	ch := make(chan dataSeen, 4096)
	room, err := lksdk.ConnectToRoomWithToken(url, token, &lksdk.RoomCallback{ParticipantCallback: lksdk.ParticipantCallback{
		OnDataPacket: func(d lksdk.DataPacket, params lksdk.DataReceiveParams) {
			var s dataSeen
			switch d := d.(type) {
			case *lksdk.UserDataPacket:
				s = dataSeen{from: params.SenderIdentity, topic: d.Topic, payload: string(d.Payload)}
			case *lk.ChatMessage:
				s = dataSeen{from: params.SenderIdentity, chat: d}
			default:
				return
			}
			select {
			case ch <- s:
			default:
			}
		},
	}})
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(room.Disconnect)
	return room, ch
}

// nextData waits for the next packet that ok accepts, skipping others.
func nextData(t *testing.T, ch chan dataSeen, what string, ok func(dataSeen) bool) dataSeen {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case s := <-ch:
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("%s: never received", what)
		}
	}
}

// Two organisations, each with a LiveKit client and the agency with a
// native client too: LiveKit data packets cross the cascade both ways byte
// for byte, reliable and lossy, to everyone or to the identities named;
// LiveKit chat reaches the native client as a chat signal and the other
// LiveKit client as chat; native chat reaches both LiveKit clients.
func TestLiveKitDataAcrossOrganisations(t *testing.T) {
	const wait = 30 * time.Second
	f := nodetest.New(t)
	trustCA(t, f)
	withLiveKit := func(c *config.Config) { c.LiveKit = config.NewLiveKitCredentials() }
	a := f.Start(t, "Ministry", withLiveKit)
	b := f.Start(t, "Agency", withLiveKit)
	nodetest.Trust(t, a, b)
	ctx := context.Background()
	alice, aliceTok := nodetest.User(t, a, "alice", "Alice")
	bruno, brunoTok := nodetest.User(t, b, "bruno", "Bruno")
	carla, carlaTok := nodetest.User(t, b, "carla", "Carla")
	conf, err := a.Federation().CreateConference(ctx, alice, "Data across kinds", nil)
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
	for _, m := range []struct {
		n *nodetest.Node
		u localuser.User
	}{{a, alice}, {b, bruno}, {b, carla}} {
		if _, _, err := m.n.Federation().Join(ctx, m.u, conf.ID); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, wait, "both replicas know the three participants", func() bool {
		for _, n := range []*nodetest.Node{a, b} {
			v, _ := n.Federation().ConferenceDetail(ctx, conf.ID)
			if len(v.Participants) != 3 {
				return false
			}
		}
		return true
	})
	hc := f.Client()
	post := func(n *nodetest.Node, apiToken, path string, body any) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", n.PublicURL()+"/api/v1/conferences/"+conf.ID+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+apiToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	aliceRef := federation.UserRef("alice", a.DID())
	brunoRef := federation.UserRef("bruno", b.DID())
	carlaRef := federation.UserRef("carla", b.DID())

	native := dialNativeURL(t, strings.Replace(b.PublicURL(), "https://", "wss://", 1)+"/api/v1/conferences/"+conf.ID+"/media?access_token="+carlaTok,
		&websocket.DialOptions{HTTPClient: hc}, carlaRef)
	eventually(t, "native joined", func() bool { return native.seen("joined", nil) != nil })
	tokA := post(a, aliceTok, "/livekit-token", nil)
	tokB := post(b, brunoTok, "/livekit-token", nil)
	roomA, fromA := dataRoom(t, tokA["url"].(string), tokA["token"].(string))
	roomB, fromB := dataRoom(t, tokB["url"].(string), tokB["token"].(string))

	// The data channels and the trunk open in their own time: send until
	// the first packet crosses.
	user := func(payload, topic string) lksdk.DataPacket {
		return &lksdk.UserDataPacket{Payload: []byte(payload), Topic: topic}
	}
	deadline := time.Now().Add(wait)
	for crossed := false; !crossed; {
		if err := roomA.LocalParticipant.PublishDataPacket(user("warm-up", "warm"), lksdk.WithDataPublishReliable(true)); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-fromB:
			crossed = s.payload == "warm-up"
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no data packet crossed from the ministry to the agency")
			}
		}
	}
	notWarm := func(s dataSeen) bool { return s.topic != "warm" }

	// Reliable, to everyone, exact bytes and sender.
	payload := "\x00\x01binary\xff" + strings.Repeat("é", 100)
	if err := roomA.LocalParticipant.PublishDataPacket(user(payload, "cursor"), lksdk.WithDataPublishReliable(true)); err != nil {
		t.Fatal(err)
	}
	if got := nextData(t, fromB, "reliable packet", notWarm); got != (dataSeen{from: aliceRef, topic: "cursor", payload: payload}) {
		t.Fatalf("agency's LiveKit client received %+v", got)
	}
	// Addressed to someone else, then to everyone: the reliable channel
	// keeps its order across the trunk, so the second arriving first means
	// the first never came.
	if err := roomA.LocalParticipant.PublishDataPacket(user("for carla", "t"), lksdk.WithDataPublishReliable(true),
		lksdk.WithDataPublishDestination([]string{carlaRef})); err != nil {
		t.Fatal(err)
	}
	if err := roomA.LocalParticipant.PublishDataPacket(user("for bruno", "t"), lksdk.WithDataPublishReliable(true),
		lksdk.WithDataPublishDestination([]string{brunoRef})); err != nil {
		t.Fatal(err)
	}
	if got := nextData(t, fromB, "addressed packet", notWarm); got != (dataSeen{from: aliceRef, topic: "t", payload: "for bruno"}) {
		t.Fatalf("agency's LiveKit client received %+v", got)
	}
	// Lossy, the other way.
	deadline = time.Now().Add(wait)
	for got := false; !got; {
		if err := roomB.LocalParticipant.PublishDataPacket(user("lossy back", "l")); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-fromA:
			if s != (dataSeen{from: brunoRef, topic: "l", payload: "lossy back"}) {
				t.Fatalf("ministry's LiveKit client received %+v", s)
			}
			got = true
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no lossy packet crossed from the agency to the ministry")
			}
		}
	}
	for len(fromA) > 0 {
		<-fromA
	}

	// LiveKit chat becomes native chat: the native client reads it as a
	// signal, the other LiveKit client as chat with the signal's id, in
	// both of LiveKit's forms.
	before := native.mark()
	first := lksdk.ChatMessage(time.Now(), "Bonjour à tous")
	sentChatID := first.Id
	if err := roomA.LocalParticipant.PublishDataPacket(first, lksdk.WithDataPublishReliable(true)); err != nil {
		t.Fatal(err)
	}
	var sig map[string]any
	eventually(t, "the native client reads the LiveKit chat line", func() bool {
		sig = native.seenSince(before, "signal", func(m map[string]any) bool { return m["kind"] == "chat" })
		return sig != nil
	})
	if sig["user"] != aliceRef || sig["text"] != "Bonjour à tous" || sig["conference"] != conf.ID {
		t.Fatalf("native client got %v", sig)
	}
	chat := nextData(t, fromB, "chat message", func(s dataSeen) bool { return s.chat != nil })
	if chat.from != aliceRef || chat.chat.GetId() != sig["id"] || chat.chat.GetMessage() != "Bonjour à tous" {
		t.Fatalf("agency's LiveKit client got chat %+v %v", chat, chat.chat)
	}
	legacy := nextData(t, fromB, "legacy chat", func(s dataSeen) bool { return s.topic == livekit.LegacyChatTopic })
	var lc map[string]any
	if err := json.Unmarshal([]byte(legacy.payload), &lc); err != nil || legacy.from != aliceRef ||
		lc["id"] != sig["id"] || lc["message"] != "Bonjour à tous" || lc["timestamp"] == nil {
		t.Fatalf("agency's LiveKit client got legacy chat %+v (%v)", legacy, err)
	}

	// The author edits the line: the native client reads a chat.edit of
	// the line's native id.
	before = native.mark()
	edit := lksdk.ChatMessage(time.Now(), "Bonjour à toutes et à tous")
	edited := time.Now().UnixMilli()
	edit.EditTimestamp = &edited
	edit.Id = sentChatID
	if err := roomA.LocalParticipant.PublishDataPacket(edit, lksdk.WithDataPublishReliable(true)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the native client reads the edit", func() bool {
		sig := native.seenSince(before, "signal", func(m map[string]any) bool { return m["kind"] == "chat.edit" })
		return sig != nil && sig["ref"] == chat.chat.GetId() && sig["text"] == "Bonjour à toutes et à tous" && sig["user"] == aliceRef
	})
	// Chat on LiveKit's UI components' topic is chat too.
	before = native.mark()
	if err := roomB.LocalParticipant.PublishDataPacket(user(`{"id":"m-1","timestamp":1767225600000,"message":"Hallo"}`, livekit.LegacyChatTopic),
		lksdk.WithDataPublishReliable(true)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the native client reads the component chat line", func() bool {
		sig := native.seenSince(before, "signal", func(m map[string]any) bool { return m["kind"] == "chat" })
		return sig != nil && sig["text"] == "Hallo" && sig["user"] == brunoRef
	})
	legacy = nextData(t, fromA, "component chat across the cascade", func(s dataSeen) bool { return s.topic == livekit.LegacyChatTopic })
	if err := json.Unmarshal([]byte(legacy.payload), &lc); err != nil || legacy.from != brunoRef || lc["message"] != "Hallo" || lc["id"] == "m-1" {
		t.Fatalf("ministry's LiveKit client got %+v (%v), want bruno's line under its native id", legacy, err)
	}

	// Native chat reaches both LiveKit clients, across the cascade too.
	line := post(b, carlaTok, "/signals", map[string]string{"kind": "chat", "text": "Salut"})
	for _, c := range []struct {
		name string
		ch   chan dataSeen
	}{{"ministry", fromA}, {"agency", fromB}} {
		got := nextData(t, c.ch, c.name+" chat from native", func(s dataSeen) bool { return s.chat != nil && s.chat.GetMessage() == "Salut" })
		if got.from != carlaRef || got.chat.GetId() != line["id"] {
			t.Fatalf("%s's LiveKit client got %+v %v, want from %s id %v", c.name, got, got.chat, carlaRef, line["id"])
		}
	}
	// The author's own LiveKit client is not sent its line back.
	select {
	case s := <-fromA:
		if s.chat != nil && s.chat.GetMessage() == "Bonjour à tous" || s.topic == livekit.LegacyChatTopic && strings.Contains(s.payload, "Bonjour") {
			t.Fatalf("the author received its own line: %+v", s)
		}
	default:
	}
}
