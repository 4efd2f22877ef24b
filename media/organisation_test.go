package media

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// trustNames names institutions as one node's trust list does, and keeps
// the labels it was asked about.
type trustNames struct {
	names map[string]string // node DID → name

	mu     sync.Mutex
	labels map[string]string // user → label asked with
}

func (n *trustNames) OrganisationOf(_ context.Context, user, label string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.labels[user] = label
	_, did, _ := strings.Cut(user, "@")
	return n.names[did]
}

func (n *trustNames) labelOf(user string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.labels[user]
}

// Each node shows the participants that come over its trunks under its own
// name for their institution, with the name their node announced beside it
// (spec/federation.md §2.1); the host relays a member's participant with
// that member's own label, not with the host's name for it.
func TestCascadeOrganisationsNamedByEachNode(t *testing.T) {
	f := newFabric()
	onA := &trustNames{names: map[string]string{"did:web:b": "Agency as A names it", "did:web:c": "City as A names it"}, labels: map[string]string{}}
	onC := &trustNames{names: map[string]string{"did:web:a": "Ministry as C names it", "did:web:b": "Agency as C names it"}, labels: map[string]string{}}
	a := f.nodeWith(t, "did:web:a", nil, Options{Organisations: onA})
	b := f.node(t, "did:web:b", nil)
	c := f.nodeWith(t, "did:web:c", nil, Options{Organisations: onC})
	f.hosts("conf-org", a)
	connect(t, b.testNode, "conf-org", "bob@did:web:b", clientOptions{})
	ann := connect(t, a.testNode, "conf-org", "ann@did:web:a", clientOptions{})
	cat := connect(t, c.testNode, "conf-org", "cat@did:web:c", clientOptions{})

	want := map[string][2]string{
		"bob@did:web:b": {"Agency as C names it", "org did:web:b"},
		"ann@did:web:a": {"Ministry as C names it", "org did:web:a"},
	}
	got := participantsShown(cat, 2, 20*time.Second)
	for u, w := range want {
		if got[u] != w {
			t.Errorf("the city shows %s as %q beside %q, want %q beside %q", u, got[u][0], got[u][1], w[0], w[1])
		}
	}
	if l := onC.labelOf("bob@did:web:b"); l != "org did:web:b" {
		t.Errorf("the host relayed bob with the label %q, want his node's own", l)
	}
	// At the host, the members' participants are named as the host names
	// them.
	seen := participantsShown(ann, 2, 20*time.Second)
	if seen["bob@did:web:b"] != [2]string{"Agency as A names it", "org did:web:b"} || seen["cat@did:web:c"] != [2]string{"City as A names it", "org did:web:c"} {
		t.Errorf("the host shows %v", seen)
	}
}

// participantsShown waits until c was shown n other participants (in
// joined or participant_joined) and returns each one's organisation and
// organisation_label.
func participantsShown(c *testClient, n int, timeout time.Duration) map[string][2]string {
	c.t.Helper()
	timeout = max(timeout, minWait)
	deadline := time.Now().Add(timeout)
	for {
		got := map[string][2]string{}
		add := func(p map[string]any) {
			org, _ := p["organisation"].(string)
			label, _ := p["organisation_label"].(string)
			got[p["user"].(string)] = [2]string{org, label}
		}
		c.mu.Lock()
		for _, m := range c.seen {
			switch m["type"] {
			case "joined":
				ps, _ := m["participants"].([]any)
				for _, p := range ps {
					add(p.(map[string]any))
				}
			case "participant_joined":
				add(m)
			}
		}
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		c.expect("participant_joined", time.Until(deadline))
	}
}
