package media

import (
	"testing"
	"time"
)

func TestBroadcastReachesOnlyTheConference(t *testing.T) {
	n := newTestNode(t)
	a := connect(t, n, "conf-x", "alice@did:web:a.example", clientOptions{})
	b := connect(t, n, "conf-x", "bob@did:web:b.example", clientOptions{})
	other := connect(t, n, "conf-y", "carol@did:web:c.example", clientOptions{})

	sig := struct {
		Kind string `json:"kind"`
		User string `json:"user"`
		Text string `json:"text"`
		Type string `json:"type"`
	}{Kind: "chat", User: "alice@did:web:a.example", Text: "Bonjour", Type: "overwritten"}
	if err := n.sfu.Broadcast("conf-x", sig); err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	for _, c := range []*testClient{a, b} {
		m := c.expect("signal", 5*time.Second)
		if m["kind"] != "chat" || m["user"] != "alice@did:web:a.example" || m["text"] != "Bonjour" || len(m) != 4 {
			t.Errorf("%s got %v", c.user, m)
		}
	}
	if got := other.collectMessages(300 * time.Millisecond); len(got) != 0 {
		t.Errorf("conference y received %v", got)
	}

	for _, bad := range []any{"text", 3, nil, make(chan int)} {
		if err := n.sfu.Broadcast("conf-x", bad); err == nil {
			t.Errorf("Broadcast(%v) accepted a non-object", bad)
		}
	}
}

// collectMessages returns the messages received within d.
func (c *testClient) collectMessages(d time.Duration) []map[string]any {
	var got []map[string]any
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return got
			}
			got = append(got, m)
		case <-deadline:
			return got
		}
	}
}
