package media

import (
	"testing"
	"time"
)

// A member node shows a participant the host announces on the trunk only
// once its own replica admits them (spec/federation.md §7): until then the
// participant waits, unseen by local clients, and comes in when the log
// changes and admits them. A participant the replica never admits never
// shows.
func TestTrunkMemberShowsOnlyVerifiedParticipants(t *testing.T) {
	f := newFabric()
	a, b, c := f.node(t, "did:web:a", nil), f.node(t, "did:web:b", nil), f.node(t, "did:web:c", nil)
	f.hosts("conf-v", a)
	const bob, ann = "bob@did:web:b", "ann@did:web:a"
	c.membership.deny("conf-v", bob, ErrNotParticipant)
	connect(t, b.testNode, "conf-v", bob, clientOptions{})
	connect(t, a.testNode, "conf-v", ann, clientOptions{})
	cat := connect(t, c.testNode, "conf-v", "cat@did:web:c", clientOptions{})

	if got := participantsShown(cat, 1, 20*time.Second); len(got) != 1 || got[ann] == ([2]string{}) {
		t.Fatalf("the city shows %v, want only ann", got)
	}
	tr := trunkOf(t, c, "conf-v", "did:web:a")
	deadline := time.Now().Add(20 * time.Second)
	for {
		tr.mu.Lock()
		_, waits := tr.waiting[bob]
		_, shown := tr.people[bob]
		tr.mu.Unlock()
		if shown {
			t.Fatal("bob is shown at the city before its replica admits him")
		}
		if waits {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the host's announcement of bob never reached the city")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The replica admits bob: he comes in.
	c.membership.deny("conf-v", bob, nil)
	c.sfu.Recheck("conf-v")
	if got := participantsShown(cat, 2, 20*time.Second); len(got) != 2 || got[bob] == ([2]string{}) {
		t.Errorf("after the log admits bob, the city shows %v", got)
	}
	tr.mu.Lock()
	left := len(tr.waiting)
	tr.mu.Unlock()
	if left != 0 {
		t.Errorf("%d participants still wait", left)
	}
}
