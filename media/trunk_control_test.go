package media

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// Whatever a peer sends on the control channel, the node keeps serving: a
// malformed, oversized or nonsensical message changes nothing, a member
// cannot bring in someone of another organisation, and media goes on.
// (A well-formed `state` is authoritative and is not garbage: it is left
// out.)
func TestTrunkControlRefusesGarbage(t *testing.T) {
	host, member := twoNodes(t, "conf-junk")
	onHost := connect(t, host.testNode, "conf-junk", "ann@did:web:a", clientOptions{autoSubscribe: true})
	pub := connect(t, member.testNode, "conf-junk", "bob@did:web:b", clientOptions{})
	video := &testTrack{tag: 'j', kind: "video", source: "camera"}
	pub.publish(video)
	id := onHost.waitTrackAdded(video, pub.user)
	checkExact(t, video, onHost.waitMedia(id, 20, 20*time.Second))

	atHost := trunkOf(t, host, "conf-junk", member.did)
	atMember := trunkOf(t, member, "conf-junk", host.did)
	atMember.mu.Lock()
	slotsBefore := atMember.slotCountLocked(webrtc.RTPCodecTypeVideo)
	atMember.mu.Unlock()
	for _, m := range []string{
		`not json`,
		`{"type":`,
		`{"type":"participant_joined","participant":{"user":"mallory@did:web:a"}}`,
		`{"type":"participant_joined","participant":{"user":""}}`,
		`{"type":"track_added","info":{"id":"","kind":"video"}}`,
		`{"type":"track_added","info":{"id":"x1","owner":"eve@did:web:e","kind":"video","source":"camera","layers":[]}}`,
		`{"type":"want","track":"no-such-track","layers":[0]}`,
		`{"type":"want","track":"` + id + `","layers":[7]}`,
		`{"type":"want","track":"` + id + `","layers":[-1]}`,
		`{"type":"bind","slot":"999","track":"` + id + `","layer":99}`,
		`{"type":"unbind","slot":"nope"}`,
		`{"type":"rates","rates":{"no-such-track":[1,2,3,4,5,6]}}`,
		`{"type":"grow","kind":"banana","slots":-4}`,
		`{"type":"track_muted","track":"no-such-track","muted":true}`,
		`{"type":"something-new"}`,
		`{"type":"want","track":"` + strings.Repeat("x", maxControlMessage) + `"}`,
	} {
		atHost.handleControl([]byte(m))
		atMember.handleControl([]byte(m))
	}
	// The track still crosses, byte for byte, and no stranger appeared: a
	// member speaks only for its own users.
	checkExact(t, video, onHost.waitMedia(id, 30, 10*time.Second))
	// Whatever the garbage set off reaches the host on the member's ordered
	// control channel, ahead of a participant who joins there now: once
	// the host's client sees her, it has seen all of it.
	mark := onHost.seenCount()
	bea := connect(t, member.testNode, "conf-junk", "bea@did:web:b", clientOptions{})
	onHost.awaitMsg(mark, "bea's participant_joined", 20*time.Second, func(m map[string]any) bool {
		return m["type"] == "participant_joined" && m["user"] == bea.user
	})
	onHost.mu.Lock()
	for _, m := range onHost.seen {
		if u, _ := m["user"].(string); m["type"] == "participant_joined" && u != pub.user && u != bea.user {
			t.Errorf("a participant came in through the peer's garbage: %v", m)
		}
		if o, _ := m["owner"].(string); m["type"] == "track_added" && o != pub.user {
			t.Errorf("a track came in through the peer's garbage: %v", m)
		}
	}
	onHost.mu.Unlock()
	atMember.mu.Lock()
	slotsAfter := atMember.slotCountLocked(webrtc.RTPCodecTypeVideo)
	atMember.mu.Unlock()
	if slotsAfter != slotsBefore {
		t.Errorf("video slots went from %d to %d on a malformed grow", slotsBefore, slotsAfter)
	}
}
