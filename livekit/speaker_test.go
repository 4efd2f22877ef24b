package livekit_test

import (
	"testing"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
)

// A native participant speaking (audio level -10 dBov) is announced to a
// LiveKit client as the active speaker.
func TestLiveKitSpeakersChanged(t *testing.T) {
	e := newEnv(t)
	const conf = "conf-speaker"
	e.members.allow(conf, "alice", true)
	e.members.allow(conf, "bob", true)
	native := dialNative(t, e, conf, "alice")
	eventually(t, "native joined", func() bool { return native.seen("joined", nil) != nil })
	native.publishAudio()
	var level uint8
	eventually(t, "the audio-level extension negotiated", func() bool {
		id, ok := native.audioLevelID()
		level = id
		return ok
	})

	speakers := make(chan []string, 16)
	room, err := lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, "bob"), &lksdk.RoomCallback{
		OnActiveSpeakersChanged: func(ps []lksdk.Participant) {
			var ids []string
			for _, p := range ps {
				ids = append(ids, p.Identity())
			}
			select {
			case speakers <- ids:
			default:
			}
		},
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(room.Disconnect)
	stop := make(chan struct{})
	defer close(stop)
	sendUntil(t, func(p *rtp.Packet) error {
		if err := p.Header.SetExtension(level, []byte{0x80 | 10}); err != nil {
			return err
		}
		return native.audio.WriteRTP(p)
	}, "alice", stop)
	for {
		select {
		case ids := <-speakers:
			if len(ids) == 1 && ids[0] == "alice" {
				return
			}
			t.Logf("speakers %v", ids)
		case <-waitTimeout():
			t.Fatal("the LiveKit client was never told that alice speaks")
		}
	}
}
