package media

import (
	"testing"
	"time"
)

// waitMessage returns the first message of type typ that match accepts,
// among those already seen and those still to come.
func (c *testClient) waitMessage(typ string, match func(map[string]any) bool, timeout time.Duration) map[string]any {
	c.t.Helper()
	timeout = max(timeout, minWait)
	deadline := time.After(timeout)
	next := 0
	for {
		c.mu.Lock()
		for ; next < len(c.seen); next++ {
			if m := c.seen[next]; m["type"] == typ && match(m) {
				c.mu.Unlock()
				return m
			}
		}
		c.mu.Unlock()
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("%s: closed while waiting for %s", c.user, typ)
			}
			c.mu.Lock()
			c.seen = append(c.seen, m)
			c.mu.Unlock()
		case <-deadline:
			c.t.Fatalf("%s: no matching %s within %v", c.user, typ, timeout)
		}
	}
}

func anyMessage(map[string]any) bool { return true }

// The active speaker is found from the audio level of each microphone, also
// for a participant of another node: the level crosses the trunk with the
// audio. A quiet microphone is never announced.
func TestSpeakerAcrossCascade(t *testing.T) {
	a, b := twoNodes(t, "conf-speak")
	onA := connect(t, a.testNode, "conf-speak", "ann@did:web:a", clientOptions{autoSubscribe: true})
	onB := connect(t, b.testNode, "conf-speak", "bob@did:web:b", clientOptions{autoSubscribe: true})
	quiet := &testTrack{tag: 'a', kind: "audio", source: "microphone", level: 127}
	loud := &testTrack{tag: 'b', kind: "audio", source: "microphone"}
	onA.publish(quiet)
	onB.publish(loud)
	loudID := onA.waitTrackAdded(loud, onB.user)
	checkExact(t, loud, onA.waitMedia(loudID, 20, 20*time.Second))
	checkExact(t, quiet, onB.waitMedia(onB.waitTrackAdded(quiet, onA.user), 20, 20*time.Second))

	for _, c := range []*testClient{onA, onB} {
		m := c.waitMessage("speaker", anyMessage, 10*time.Second)
		if m["user"] != onB.user {
			t.Fatalf("%s: first speaker %v, want %s (the only one with sound)", c.user, m["user"], onB.user)
		}
	}

	// Muting crosses too, under the same track id.
	onB.send(map[string]any{"type": "mute", "track": loudID, "muted": true})
	m := onA.waitMessage("track_muted", anyMessage, 5*time.Second)
	if m["track"] != loudID || m["muted"] != true {
		t.Fatalf("track_muted %v, want track %s muted", m, loudID)
	}
	onB.send(map[string]any{"type": "mute", "track": loudID, "muted": false})
	m = onA.waitMessage("track_muted", func(m map[string]any) bool { return m["muted"] != true }, 5*time.Second)
	if m["track"] != loudID {
		t.Fatalf("track_muted %v, want track %s unmuted", m, loudID)
	}
}

// On one node, the speaker moves to whoever speaks.
func TestSpeakerFollowsTheLoudest(t *testing.T) {
	n := newTestNode(t)
	ann := connect(t, n, "conf-one", "ann@did:web:a", clientOptions{autoSubscribe: true})
	bob := connect(t, n, "conf-one", "bob@did:web:a", clientOptions{autoSubscribe: true})
	annMic := &testTrack{tag: 'a', kind: "audio", source: "microphone", level: 20}
	bobMic := &testTrack{tag: 'b', kind: "audio", source: "microphone", level: 127}
	ann.publish(annMic)
	bob.publish(bobMic)
	m := bob.waitMessage("speaker", anyMessage, 10*time.Second)
	if m["user"] != ann.user {
		t.Fatalf("first speaker %v, want %s", m["user"], ann.user)
	}
	// Ann mutes: a muted microphone does not speak, and Bob starts to.
	annID := bob.waitTrackAdded(annMic, ann.user)
	bobMic.mu.Lock()
	bobMic.level = 10
	bobMic.mu.Unlock()
	ann.send(map[string]any{"type": "mute", "track": annID, "muted": true})
	ann.waitMessage("speaker", func(m map[string]any) bool { return m["user"] == bob.user }, 10*time.Second)
}

// Speech comes in bursts, and the detector looks every 300 ms: a burst that
// is loud only between two looks still makes its speaker the loudest.
func TestSpeakerHeardInShortBursts(t *testing.T) {
	n := newTestNode(t)
	ann := connect(t, n, "conf-burst", "ann@did:web:a", clientOptions{autoSubscribe: true})
	bob := connect(t, n, "conf-burst", "bob@did:web:a", clientOptions{autoSubscribe: true})
	// Every 500 ms, five packets (50 ms) at -1 dBov, silence otherwise: the
	// smoothed loudness is above the threshold for two packets, 20 ms.
	annMic := &testTrack{tag: 'a', kind: "audio", source: "microphone", levelAt: func(seq uint32) byte {
		if seq%50 < 5 {
			return 1
		}
		return 127
	}}
	ann.publish(annMic)
	bob.waitTrackAdded(annMic, ann.user)
	m := bob.waitMessage("speaker", anyMessage, 5*time.Second)
	if m["user"] != ann.user {
		t.Fatalf("speaker %v, want %s", m["user"], ann.user)
	}
}
