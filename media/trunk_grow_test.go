package media

import (
	"fmt"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/testwait"
	"github.com/pion/webrtc/v4"
)

// More tracks than a trunk has slots of their kind still cross: the member
// grows the pool by renegotiating, by itself when it is the side short of
// slots (conference "up": the member's microphones go to the host), and
// when the host asks (conference "down": the host's go to the member).
// Either way the pool grows once, by the same number on both sides.
func TestTrunkGrowsItsSlotPool(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 20 WebRTC clients")
	}
	f := newFabric()
	host, member := f.node(t, "did:web:a", nil), f.node(t, "did:web:b", nil)
	for _, c := range []struct {
		conference string
		from, to   *cascadeNode
	}{{"conf-up", member, host}, {"conf-down", host, member}} {
		f.hosts(c.conference, host)
		sub := connect(t, c.to.testNode, c.conference, "sub@"+c.to.did, clientOptions{autoSubscribe: true})
		type mic struct {
			c  *testClient
			tr *testTrack
		}
		var mics []mic
		for i := range trunkAudioSlots + 1 {
			pub := connect(t, c.from.testNode, c.conference, fmt.Sprintf("p%d@%s", i, c.from.did), clientOptions{})
			tr := &testTrack{tag: byte('A' + i), kind: "audio", source: "microphone"}
			pub.publish(tr)
			mics = append(mics, mic{pub, tr})
		}
		for _, m := range mics {
			checkExact(t, m.tr, sub.waitMedia(sub.waitTrackAdded(m.tr, m.c.user), 10, 30*time.Second))
		}
		for _, side := range []*cascadeNode{host, member} {
			peer := member.did
			if side == member {
				peer = host.did
			}
			// Read from the trunk as it is now: on a loaded machine a trunk
			// may have been set up afresh and be growing again.
			var audio, video int
			testwait.For(settleWithin, func() bool {
				tr := trunkOf(t, side, c.conference, peer)
				tr.mu.Lock()
				defer tr.mu.Unlock()
				audio, video = tr.slotCountLocked(webrtc.RTPCodecTypeAudio), tr.slotCountLocked(webrtc.RTPCodecTypeVideo)
				return audio >= trunkAudioSlots+slotGrowth
			})
			if audio != trunkAudioSlots+slotGrowth || video != trunkVideoSlots {
				t.Fatalf("%s, %s: %d audio and %d video slots, want %d and %d", c.conference, side.did, audio, video, trunkAudioSlots+slotGrowth, trunkVideoSlots)
			}
		}
	}
}
