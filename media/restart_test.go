package media

import (
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/entente-org/entente/internal/testwait"
)

// Restart, as a draining replica calls it, closes every native client's
// WebSocket with 1012 (service restart) and no `removed`: the client is to
// reconnect at once, not to leave the call.
func TestRestartClosesWith1012(t *testing.T) {
	n := newTestNode(t)
	a := connect(t, n, "conf-restart", "alice", clientOptions{}) // joined
	if got := n.sfu.Sessions(); got != 1 {
		t.Fatalf("Sessions = %d, want 1", got)
	}
	if got := n.sfu.Restart(); got != 1 {
		t.Fatalf("Restart ended %d sessions, want 1", got)
	}
	select {
	case <-a.readDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the WebSocket stayed open")
	}
	a.mu.Lock()
	err, seen := a.readErr, a.seen
	a.mu.Unlock()
	if code := websocket.CloseStatus(err); code != websocket.StatusServiceRestart {
		t.Fatalf("closed with %v (%v), want 1012", code, err)
	}
	for _, m := range seen {
		if m["type"] == "removed" {
			t.Fatalf("a restart sent %v", m)
		}
	}
	testwait.Until(t, 10*time.Second, func() bool { return n.sfu.Sessions() == 0 },
		"sessions left after the restart")
}
