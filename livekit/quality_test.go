package livekit_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lk "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// LiveKit clients are told the connection quality of each participant
// every few seconds (spec/client-api.md §8.9): a publisher whose packets all
// arrive is EXCELLENT with a plausible score, one a quarter of whose
// packets are lost on the way (sequence numbers skipped, as a lossy link
// leaves them) becomes POOR, and one that stops sending is LOST.
func TestConnectionQualityReachesLiveKitClients(t *testing.T) {
	e := newEnv(t)
	const conf = "conf-q"
	e.members.allow(conf, "pub", true)
	e.members.allow(conf, "obs", true)

	type seen struct {
		identity string
		info     *lk.ConnectionQualityInfo
	}
	var mu sync.Mutex
	var updates []seen
	obs, err := lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, "obs"), &lksdk.RoomCallback{
		ParticipantCallback: lksdk.ParticipantCallback{
			OnConnectionQualityChanged: func(u *lk.ConnectionQualityInfo, p lksdk.Participant) {
				mu.Lock()
				updates = append(updates, seen{p.Identity(), u})
				mu.Unlock()
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(obs.Disconnect)
	pub, err := lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, "pub"), &lksdk.RoomCallback{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Disconnect)
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "q-audio", "q-stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "mic", Source: lk.TrackSource_MICROPHONE}); err != nil {
		t.Fatal(err)
	}
	// phase 0 sends every packet, 1 skips every fourth sequence number, 2
	// sends nothing.
	var phase atomic.Int32
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		seq := uint16(0)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			switch phase.Load() {
			case 2:
				continue
			case 1:
				if i%4 == 0 {
					seq++ // lost on the way
				}
			}
			p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(i * 960), SSRC: 1}, Payload: opusPayload("q", i)}
			seq++
			if track.WriteRTP(p) != nil {
				return
			}
		}
	}()

	since := 0
	waitQuality := func(what, identity string, ok func(*lk.ConnectionQualityInfo) bool) *lk.ConnectionQualityInfo {
		t.Helper()
		var found *lk.ConnectionQualityInfo
		eventually(t, what, func() bool {
			mu.Lock()
			defer mu.Unlock()
			for i := since; i < len(updates); i++ {
				if updates[i].identity == identity && ok(updates[i].info) {
					found, since = updates[i].info, i+1
					return true
				}
			}
			return false
		})
		return found
	}
	good := waitQuality("the publisher rated EXCELLENT", "pub", func(i *lk.ConnectionQualityInfo) bool {
		return i.Quality == lk.ConnectionQuality_EXCELLENT
	})
	if good.ParticipantSid != "pub" || good.Score < 4.1 || good.Score > 4.5 {
		t.Fatalf("EXCELLENT rating %+v: score out of 4.1…4.5", good)
	}
	waitQuality("the observer's own rating", "obs", func(i *lk.ConnectionQualityInfo) bool {
		return i.Quality == lk.ConnectionQuality_EXCELLENT
	})

	phase.Store(1)
	poor := waitQuality("the lossy publisher rated POOR", "pub", func(i *lk.ConnectionQualityInfo) bool {
		return i.Quality == lk.ConnectionQuality_POOR
	})
	if poor.Score >= 3.6 || poor.Score < 1 {
		t.Fatalf("POOR rating %+v: score out of 1…3.6", poor)
	}

	phase.Store(2)
	waitQuality("the silent publisher rated LOST", "pub", func(i *lk.ConnectionQualityInfo) bool {
		return i.Quality == lk.ConnectionQuality_LOST
	})
}
