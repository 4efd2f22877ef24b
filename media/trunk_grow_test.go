package media

import (
	"errors"
	"fmt"
	"sort"
	"strings"
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
			var bound []string
			testwait.For(settleWithin, func() bool {
				tr := trunkOf(t, side, c.conference, peer)
				tr.mu.Lock()
				defer tr.mu.Unlock()
				audio, video = tr.slotCountLocked(webrtc.RTPCodecTypeAudio), tr.slotCountLocked(webrtc.RTPCodecTypeVideo)
				bound = slotBindings(tr)
				return audio >= trunkAudioSlots+slotGrowth
			})
			if audio != trunkAudioSlots+slotGrowth || video != trunkVideoSlots {
				t.Fatalf("%s, %s: %d audio and %d video slots, want %d and %d; audio slots: %s", c.conference, side.did, audio, video, trunkAudioSlots+slotGrowth, trunkVideoSlots, strings.Join(bound, ", "))
			}
		}
	}
}

// slotBindings describes tr's audio slots for a failure message: MID, then
// the track bound or "free", "starting" (no sender yet) or "pending" (not in
// a description yet). Called with tr.mu held.
func slotBindings(tr *trunk) []string {
	var out []string
	for mid, s := range tr.slots {
		if s.kind != webrtc.RTPCodecTypeAudio {
			continue
		}
		s.mu.Lock()
		state := "free"
		switch {
		case s.up != nil:
			state = s.up.ID()
		case s.writer == nil:
			state = "starting"
		}
		s.mu.Unlock()
		out = append(out, mid+"="+state)
	}
	for _, s := range tr.pending {
		if s.kind == webrtc.RTPCodecTypeAudio {
			out = append(out, "pending")
		}
	}
	sort.Strings(out)
	return out
}

// A slot takes a binding only while it is free: not before its sender is
// bound, not while another track holds it, not while it sends a probe. Two
// serves that both saw it free bind it once.
func TestTrunkSlotBindsOnlyWhenFree(t *testing.T) {
	up := newAudioToTrunk(t, &discardWriter{})
	other := newAudioToTrunk(t, &discardWriter{})
	codecs := []webrtc.RTPCodecParameters{{RTPCodecCapability: up.codec, PayloadType: 111}}
	s := newTrunkSlot(&trunk{}, webrtc.RTPCodecTypeAudio)
	s.codecs = codecs
	if err := s.bind(up, 0, &trackCounter{}); !errors.Is(err, errSlotTaken) {
		t.Fatalf("bind before the sender is bound: %v, want errSlotTaken", err)
	}
	s.writer = &discardWriter{}
	if err := s.bind(up, 0, &trackCounter{}); err != nil {
		t.Fatalf("bind of a free slot: %v", err)
	}
	if err := s.bind(other, 0, &trackCounter{}); !errors.Is(err, errSlotTaken) {
		t.Fatalf("second bind: %v, want errSlotTaken", err)
	}
	if s.up != UpTrack(up) {
		t.Fatalf("slot carries %v after a refused bind, want the first track", s.up)
	}
	s.unbind()
	if !s.reserveForProbe() {
		t.Fatal("a free slot refused a probe")
	}
	if err := s.bind(other, 0, &trackCounter{}); !errors.Is(err, errSlotTaken) {
		t.Fatalf("bind during a probe: %v, want errSlotTaken", err)
	}
	s.endProbe()
	if err := s.bind(other, 0, &trackCounter{}); err != nil || s.up != UpTrack(other) {
		t.Fatalf("bind after the probe: %v, slot carries %v", err, s.up)
	}
}
