package livekit_test

import (
	"sync"
	"testing"

	lk "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/entente-org/entente/livekit"
)

// A LiveKit client (LiveKit's own Go SDK) and a native client in one
// conference receive each other's Opus packets byte for byte, and the
// LiveKit client sees the native participant with its organisation.
func TestLiveKitAndNativeClientsHearEachOther(t *testing.T) {
	e := newEnv(t)
	const conf = "conf-1"
	e.members.allow(conf, "alice", true)
	e.members.allow(conf, "bob", true)

	native := dialNative(t, e, conf, "alice")
	eventually(t, "native joined", func() bool { return native.seen("joined", nil) != nil })
	native.publishAudio()

	fromNative := make(chan []byte, 4096)
	var subOnce sync.Once
	subscribed := make(chan *lksdk.RemoteParticipant, 1)
	cb := &lksdk.RoomCallback{ParticipantCallback: lksdk.ParticipantCallback{
		OnTrackSubscribed: func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
			subOnce.Do(func() { subscribed <- rp })
			go readPayloads(track, fromNative)
		},
	}}
	room, err := lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, "bob"), cb, lksdk.WithAutoSubscribe(true))
	if err != nil {
		t.Fatalf("LiveKit client could not connect: %v", err)
	}
	t.Cleanup(room.Disconnect)
	if room.Name() != conf {
		t.Fatalf("room name %q, want %q", room.Name(), conf)
	}
	if got := room.LocalParticipant.Attributes()[livekit.AttrOrganisation]; got != "Ministry of Tests" {
		t.Fatalf("own organisation attribute %q", got)
	}

	stop := make(chan struct{})
	defer close(stop)
	sendUntil(t, native.audio.WriteRTP, "alice", stop)
	var rp *lksdk.RemoteParticipant
	select {
	case rp = <-subscribed:
	case <-waitTimeout():
		t.Fatal("LiveKit client never subscribed to the native client's track")
	}
	if rp.Identity() != "alice" || rp.Name() != "alice" || rp.Attributes()[livekit.AttrOrganisation] != "Ministry of Tests" {
		t.Fatalf("native participant seen as identity %q name %q attributes %v", rp.Identity(), rp.Name(), rp.Attributes())
	}
	waitPayloads(t, fromNative, "alice", 20, opusPayload)

	// The other way: the LiveKit client publishes Opus.
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "lk-audio", "lk-stream")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "mic", Source: lk.TrackSource_MICROPHONE})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	sendUntil(t, func(p *rtp.Packet) error { return track.WriteRTP(p) }, "bob", stop)
	eventually(t, "native client told of the LiveKit track", func() bool {
		return native.seen("track_added", func(m map[string]any) bool { return m["id"] == pub.SID() && m["owner"] == "bob" }) != nil
	})
	waitPayloads(t, native.payloads, "bob", 20, opusPayload)

	// Mute reaches the native client as track_muted.
	pub.SetMuted(true)
	eventually(t, "native client told of the mute", func() bool {
		return native.seen("track_muted", func(m map[string]any) bool { return m["track"] == pub.SID() && m["muted"] == true }) != nil
	})

	// Unpublishing renegotiates without the track: the native client sees
	// it removed.
	if err := room.LocalParticipant.UnpublishTrack(pub.SID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "native client told the LiveKit track is gone", func() bool {
		return native.seen("track_removed", func(m map[string]any) bool { return m["track"] == pub.SID() }) != nil
	})
}

// A LiveKit participant whose membership is withdrawn is disconnected with
// a LeaveRequest saying it was removed.
func TestLiveKitParticipantRemoved(t *testing.T) {
	e := newEnv(t)
	const conf = "conf-2"
	e.members.allow(conf, "bob", true)
	reasons := make(chan lksdk.DisconnectionReason, 1)
	room, err := lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, "bob"), &lksdk.RoomCallback{
		OnDisconnectedWithReason: func(r lksdk.DisconnectionReason) { reasons <- r },
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(room.Disconnect)
	e.members.allow(conf, "bob", false)
	e.sfu.Recheck(conf)
	select {
	case r := <-reasons:
		if r != lksdk.ParticipantRemoved {
			t.Fatalf("disconnected with reason %q, want removal", r)
		}
	case <-waitTimeout():
		t.Fatal("removed LiveKit participant was not disconnected")
	}
}
