package livekit_test

import (
	"testing"

	lk "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// VP8 travels both ways between a LiveKit client and a native client byte
// for byte, announced as camera tracks.
func TestLiveKitAndNativeVP8(t *testing.T) {
	e := newEnv(t)
	const conf = "conf-vp8"
	e.members.allow(conf, "alice", true)
	e.members.allow(conf, "bob", true)
	native := dialNative(t, e, conf, "alice")
	eventually(t, "native joined", func() bool { return native.seen("joined", nil) != nil })
	native.publishVideo()

	fromNative := make(chan []byte, 4096)
	kinds := make(chan lk.TrackSource, 4)
	room, err := lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, "bob"), &lksdk.RoomCallback{ParticipantCallback: lksdk.ParticipantCallback{
		OnTrackSubscribed: func(track *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
			kinds <- pub.Source()
			go readPayloads(track, fromNative)
		},
	}})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(room.Disconnect)
	stop := make(chan struct{})
	defer close(stop)
	sendPackets(t, native.video.WriteRTP, "alicecam", 96, vp8Payload, stop)
	waitPayloads(t, fromNative, "alicecam", 20, vp8Payload)
	if src := <-kinds; src != lk.TrackSource_CAMERA {
		t.Fatalf("native video announced as %v, want CAMERA", src)
	}

	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "lk-video", "lk-stream")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "camera", Source: lk.TrackSource_CAMERA, VideoWidth: 640, VideoHeight: 480})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	sendPackets(t, func(p *rtp.Packet) error { return track.WriteRTP(p) }, "bobcam", 96, vp8Payload, stop)
	eventually(t, "native client told of the LiveKit camera", func() bool {
		return native.seen("track_added", func(m map[string]any) bool {
			return m["id"] == pub.SID() && m["kind"] == "video" && m["source"] == "camera"
		}) != nil
	})
	waitPayloads(t, native.payloads, "bobcam", 20, vp8Payload)
}
