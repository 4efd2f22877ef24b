package media

import (
	"testing"
	"time"

	"github.com/entente-org/entente/internal/testwait"
)

// A member node shows a participant the host announces on the trunk only
// once its own replica admits them (spec/federation.md §7): until then the
// participant waits, unseen by local clients, and comes in when the log
// changes and admits them. A participant the replica never admits never
// shows.
func TestTrunkMemberShowsOnlyVerifiedParticipants(t *testing.T) {
	a, b, c := threeNodes(t, "conf-v")
	const bob, ann = "bob@did:web:b", "ann@did:web:a"
	c.membership.deny("conf-v", bob, ErrNotParticipant)
	connect(t, b.testNode, "conf-v", bob, clientOptions{})
	connect(t, a.testNode, "conf-v", ann, clientOptions{})
	cat := connect(t, c.testNode, "conf-v", "cat@did:web:c", clientOptions{})

	if got := participantsShown(cat, 1, 20*time.Second); len(got) != 1 || got[ann] == ([2]string{}) {
		t.Fatalf("the city shows %v, want only ann", got)
	}
	tr := trunkOf(t, c, "conf-v", "did:web:a")
	var waits, shown bool
	testwait.Until(t, 20*time.Second, func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		_, waits = tr.waiting[bob]
		_, shown = tr.people[bob]
		return waits || shown
	}, "the host's announcement of bob never reached the city")
	if shown {
		t.Fatal("bob is shown at the city before its replica admits him")
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
