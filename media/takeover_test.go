package media

import (
	"testing"
	"time"
)

// TestSameUserTakesOverTheirSession: a user whose browser reloaded (or
// crashed) connects again while the SFU still holds their old session. The
// new session replaces the old one at once: the old is told "replaced" and
// closed, its tracks leave, the others see the user leave and come back
// once, and then receive the new session's media.
func TestSameUserTakesOverTheirSession(t *testing.T) {
	n := newTestNode(t)
	const alice = "alice@did:web:a.example"
	old := connect(t, n, "conf-t", alice, clientOptions{})
	bob := connect(t, n, "conf-t", "bob@did:web:b.example", clientOptions{autoSubscribe: true})
	first := &testTrack{tag: 'o', kind: "audio", source: "microphone"}
	old.publish(first)
	oldID := bob.waitTrackAdded(first, alice)
	bob.waitMedia(oldID, 10, 15*time.Second)

	fresh := connect(t, n, "conf-t", alice, clientOptions{})
	if r := old.expect("removed", 10*time.Second); r["reason"] != "replaced" {
		t.Errorf("old session: removed reason = %v, want replaced", r["reason"])
	}
	// The old session's connection is closed after the message.
	deadline := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-old.msgs:
		case <-deadline:
			t.Fatal("the replaced session's WebSocket stays open")
		}
	}

	// Bob hears, in order: the old track go, alice leave, alice join.
	want := []string{"track_removed", "participant_left", "participant_joined"}
	var got []string
	for len(got) < len(want) {
		m := bob.expect(want[len(got)], 10*time.Second)
		who := m["user"]
		if m["type"] == "track_removed" {
			who = alice
			if m["track"] != oldID {
				t.Errorf("track_removed %v, want %s", m["track"], oldID)
			}
		}
		if who != alice {
			t.Errorf("%s for %v, want %s", m["type"], who, alice)
		}
		got = append(got, m["type"].(string))
	}
	bob.mu.Lock()
	joins, lefts := 0, 0
	for _, m := range bob.seen {
		switch m["type"] {
		case "participant_joined":
			joins++
		case "participant_left":
			lefts++
		}
	}
	bob.mu.Unlock()
	if joins != 1 || lefts != 1 {
		t.Errorf("bob saw %d joins and %d leaves of alice's takeover, want 1 and 1", joins, lefts)
	}
	n.sfu.router.mu.Lock()
	conf := n.sfu.router.conferences["conf-t"]
	n.sfu.router.mu.Unlock()
	if p, ok := conf.participant(alice); !ok || p.User != alice {
		t.Fatalf("alice is not in the conference after the takeover")
	}
	count := 0
	for _, d := range n.sfu.router.downs("conf-t") {
		if c, ok := d.(*client); ok && c.me.User == alice {
			count++
		}
	}
	if count != 1 {
		t.Errorf("alice has %d sessions in the conference, want 1", count)
	}

	// The new session's media reaches bob.
	second := &testTrack{tag: 'n', kind: "audio", source: "microphone"}
	fresh.publish(second)
	added := bob.expect("track_added", 10*time.Second)
	newID, _ := added["id"].(string)
	if added["owner"] != alice || newID == oldID {
		t.Fatalf("track_added %v after the takeover, want a new track of %s", added, alice)
	}
	for _, r := range bob.waitMedia(newID, 10, 15*time.Second) {
		if tag, _, _, ok := parsePayload(r.payload); !ok || tag != 'n' {
			t.Fatalf("bob received %x on the new track, not the new session's media", r.payload)
		}
	}
}
