package node

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/testwait"
	"github.com/entente-org/entente/store"
)

// settableClock is a node's clock that stands still until the test moves it.
type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *settableClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// scrape returns the samples of /metrics by series ("name{labels}").
func scrape(t *testing.T, f *testFederation, n *Node) map[string]string {
	t.Helper()
	code, body := get(t, f.client(), n.PublicURL()+"/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	samples := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("metrics line without a value: %q", line)
		}
		samples[line[:i]] = line[i+1:]
	}
	return samples
}

func wantSamples(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for series, v := range want {
		if got[series] != v {
			t.Errorf("%s = %q, want %q", series, got[series], v)
		}
	}
}

// The conference, participant and outbox gauges are counted in the store at
// each scrape; a store that fails leaves them out and /metrics still serves.
func TestActivityMetrics(t *testing.T) {
	f := newFederation(t)
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clock := &settableClock{t: t0}
	n := f.startWith(t, "ministry", nil, Options{Now: clock.Now})
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// A peer that never answers: its invitation stays pending.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "did:web:" + url.PathEscape(dead.Addr().String())
	dead.Close()
	if err := (federation.TrustList{Store: n.Store()}).Add(ctx, store.Peer{DID: gone, Name: "Gone", MayInvite: true, AddedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.AddUser(ctx, n.Store(), "alice", "Alice", false, t0); err != nil {
		t.Fatal(err)
	}
	alice := localuser.User{ID: "alice", DisplayName: "Alice"}
	conf, err := n.Federation().CreateConference(ctx, alice, "Weekly", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Federation().Join(ctx, alice, conf.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Federation().Invite(ctx, alice, conf.ID, gone, nil); err != nil {
		t.Fatal(err)
	}
	// The clock stands still, so the first failed attempt is the only one.
	testwait.Until(t, 30*time.Second, func() bool {
		ms, err := n.Store().ListOutbox(ctx, gone, "")
		return err == nil && len(ms) == 1 && ms[0].Attempts == 1
	}, "still waiting for the first delivery attempt to %s", gone)

	wantSamples(t, scrape(t, f, n), map[string]string{
		`entente_conferences{role="host"}`:                        "1",
		`entente_conferences{role="member"}`:                      "0",
		`entente_conference_participants{state="joined"}`:         "1",
		`entente_conference_participants{state="waiting"}`:        "0",
		`entente_federation_outbox_messages{state="pending"}`:     "1",
		`entente_federation_outbox_messages{state="delivered"}`:   "0",
		`entente_federation_outbox_messages{state="failed"}`:      "0",
		`entente_federation_outbox_messages{state="expired"}`:     "0",
		`entente_federation_outbox_oldest_pending_age_seconds`:    "0",
		`entente_federation_deliveries_total{result="retried"}`:   "1",
		`entente_federation_deliveries_total{result="delivered"}`: "0",
		`entente_federation_deliveries_total{result="refused"}`:   "0",
		`entente_federation_deliveries_total{result="throttled"}`: "0",
		`entente_federation_deliveries_total{result="expired"}`:   "0",
		`entente_federation_delivery_leases`:                      "1",
		`entente_media_forwarded_packets_total{kind="video"}`:     "0",
		`entente_media_malformed_packets_total{protocol="rtp"}`:   "0",
	})

	// Ninety seconds later the invitation is still pending, ninety seconds
	// old (retries do not make it younger).
	clock.Set(t0.Add(90 * time.Second))
	wantSamples(t, scrape(t, f, n), map[string]string{
		`entente_federation_outbox_messages{state="pending"}`:  "1",
		`entente_federation_outbox_oldest_pending_age_seconds`: "90",
		`entente_conferences{role="host"}`:                     "1",
	})

	n.Store().Close()
	got := scrape(t, f, n)
	for series := range got {
		if strings.HasPrefix(series, "entente_conference") || strings.HasPrefix(series, "entente_federation_outbox") {
			t.Errorf("with the store closed, /metrics still has %s", series)
		}
	}
	if got[`entente_build_info{version="test"}`] != "1" || got[`entente_federation_deliveries_total{result="delivered"}`] != "0" {
		t.Errorf("with the store closed, /metrics lost the series that do not need it: %v", got)
	}
}
