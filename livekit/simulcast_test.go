package livekit_test

import (
	"strings"
	"testing"
	"time"

	lk "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// settlesOn waits until payloads of tag arrive, then asserts that the next
// n payloads are all of tag: the subscriber receives that layer alone.
func settlesOn(t *testing.T, ch <-chan []byte, tag string, n int) {
	t.Helper()
	is := func(p []byte) bool {
		at := strings.LastIndex(string(p), "-")
		return at >= len(tag) && string(p[at-len(tag):at]) == tag
	}
	deadline := time.After(30 * time.Second)
	for got := 0; got < n; {
		select {
		case p := <-ch:
			switch {
			case is(p):
				got++
			case got > 0:
				t.Fatalf("after %d payloads of %s came %q", got, tag, p)
			}
		case <-deadline:
			t.Fatalf("layer %s not settled on (%d of %d)", tag, got, n)
		}
	}
}

// A LiveKit client publishes three simulcast layers; a native subscriber
// asking for 320×180 receives the quarter layer alone, and a LiveKit
// subscriber gets the layer of the quality or size it asks for.
func TestLiveKitSimulcast(t *testing.T) {
	e := newEnv(t)
	const conf = "conf-simulcast"
	for _, u := range []string{"alice", "bob", "carol"} {
		e.members.allow(conf, u, true)
	}
	native := dialNative(t, e, conf, "alice")
	eventually(t, "native joined", func() bool { return native.seen("joined", nil) != nil })

	bob, err := lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, "bob"), &lksdk.RoomCallback{})
	if err != nil {
		t.Fatalf("connect bob: %v", err)
	}
	t.Cleanup(bob.Disconnect)
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	layers := []struct {
		q    lk.VideoQuality
		w, h uint32
		tag  string
	}{{lk.VideoQuality_LOW, 320, 180, "bobq"}, {lk.VideoQuality_MEDIUM, 640, 360, "bobh"}, {lk.VideoQuality_HIGH, 1280, 720, "bobf"}}
	var tracks []*lksdk.LocalTrack
	for _, l := range layers {
		tr, err := lksdk.NewLocalTrack(vp8, lksdk.WithSimulcast("camera", &lk.VideoLayer{Quality: l.q, Width: l.w, Height: l.h}))
		if err != nil {
			t.Fatal(err)
		}
		tracks = append(tracks, tr)
	}
	pub, err := bob.LocalParticipant.PublishSimulcastTrack(tracks, &lksdk.TrackPublicationOptions{Name: "camera", Source: lk.TrackSource_CAMERA, VideoWidth: 1280, VideoHeight: 720})
	if err != nil {
		t.Fatalf("publish simulcast: %v", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	for i, tr := range tracks {
		sendPackets(t, func(p *rtp.Packet) error { return tr.WriteRTP(p, nil) }, layers[i].tag, 96, vp8Payload, stop)
	}
	eventually(t, "native client told of the simulcast camera", func() bool {
		return native.seen("track_added", func(m map[string]any) bool {
			l, _ := m["layers"].([]any)
			return m["id"] == pub.SID() && len(l) == 3
		}) != nil
	})
	native.send(map[string]any{"type": "subscribe", "track": pub.SID(), "max_width": 320, "max_height": 180})
	settlesOn(t, native.payloads, "bobq", 20)

	fromBob := make(chan []byte, 4096)
	subscribed := make(chan *lksdk.RemoteTrackPublication, 1)
	carol, err := lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, "carol"), &lksdk.RoomCallback{ParticipantCallback: lksdk.ParticipantCallback{
		OnTrackSubscribed: func(track *webrtc.TrackRemote, rp *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
			if rp.SID() != pub.SID() {
				return
			}
			subscribed <- rp
			go readPayloads(track, fromBob)
		},
	}})
	if err != nil {
		t.Fatalf("connect carol: %v", err)
	}
	t.Cleanup(carol.Disconnect)
	var rp *lksdk.RemoteTrackPublication
	select {
	case rp = <-subscribed:
	case <-waitTimeout():
		t.Fatal("carol never subscribed to bob's camera")
	}
	if err := rp.SetVideoQuality(lk.VideoQuality_LOW); err != nil {
		t.Fatal(err)
	}
	settlesOn(t, fromBob, "bobq", 20)
	rp.SetVideoDimensions(640, 360)
	settlesOn(t, fromBob, "bobh", 20)
	if err := rp.SetVideoQuality(lk.VideoQuality_HIGH); err != nil {
		t.Fatal(err)
	}
	rp.SetVideoDimensions(0, 0)
	settlesOn(t, fromBob, "bobf", 20)
}
