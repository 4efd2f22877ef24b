package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/testwait"
)

// natsURL is the NATS server with JetStream of the tests; under CI=true its
// absence fails them.
func natsURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("ENTENTE_TEST_NATS_URL")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ENTENTE_TEST_NATS_URL is not set; CI needs NATS with JetStream (scripts/test-all starts one)")
		}
		t.Skip("ENTENTE_TEST_NATS_URL not set: no NATS with JetStream to test replicas against")
	}
	return u
}

func testKey(t *testing.T) string {
	b := make([]byte, 6)
	rand.Read(b)
	return "test" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")) + "_" + NodeKeyFor(string(b))
}

func open(t *testing.T, url, key, id string, secret []byte) *Cluster {
	t.Helper()
	c, err := Open(context.Background(), Options{
		NATSURL: url, ReplicaID: id, InternalURL: "https://" + id + ".internal:8443",
		NodeKey: key, MaxParticipants: 10, Secret: secret,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// twoReplicas opens replicas "a" and "b" of one node, closed when the test
// ends.
func twoReplicas(t *testing.T) (a, b *Cluster) {
	t.Helper()
	url, key := natsURL(t), testKey(t)
	a = open(t, url, key, "a", secret())
	t.Cleanup(a.Close)
	b = open(t, url, key, "b", secret())
	t.Cleanup(b.Close)
	return a, b
}

func secret() []byte { return bytes.Repeat([]byte{7}, 32) }

func TestPlacementMovesOffADeadReplica(t *testing.T) {
	url := natsURL(t)
	key := testKey(t)
	a := open(t, url, key, "a", secret())
	defer a.Close()
	b := open(t, url, key, "b", secret())
	testwait.Until(t, 10*time.Second, func() bool { return len(a.Live()) == 2 }, "a does not see b")

	ctx := context.Background()
	a.SetLoad(5) // b has more room
	testwait.Until(t, 10*time.Second, func() bool {
		for _, r := range b.Live() {
			if r.ID == "a" && r.Participants == 5 {
				return true
			}
		}
		return false
	}, "b does not see a's load")
	got, err := b.Place(ctx, "conf-1@did:web:x")
	if err != nil || got.ID != "b" {
		t.Fatalf("Place = %+v, %v; want b", got, err)
	}
	// Every replica agrees.
	if got, err := a.Place(ctx, "conf-1@did:web:x"); err != nil || got.ID != "b" {
		t.Fatalf("a: Place = %+v, %v; want b", got, err)
	}
	if o, ok, err := a.Owner(ctx, "conf-1@did:web:x"); err != nil || !ok || o.ID != "b" || o.InternalURL != "https://b.internal:8443" {
		t.Fatalf("Owner = %+v %v %v", o, ok, err)
	}
	// b dies without a word: its heartbeat stops (no roster delete).
	b.stop()
	<-b.done
	b.nc.Close()
	testwait.Until(t, 10*time.Second, func() bool { return len(a.Live()) == 1 }, "b did not age out of a's roster")
	if _, ok, _ := a.Owner(ctx, "conf-1@did:web:x"); ok {
		t.Fatal("dead owner still reported")
	}
	if got, err := a.Place(ctx, "conf-1@did:web:x"); err != nil || got.ID != "a" {
		t.Fatalf("after b's death Place = %+v, %v; want a", got, err)
	}
}

func TestDrainReleasesConferences(t *testing.T) {
	a, b := twoReplicas(t)
	testwait.Until(t, 10*time.Second, func() bool { return len(b.Live()) == 2 }, "b does not see a")
	ctx := context.Background()
	if got, err := a.Place(ctx, "c1"); err != nil || got.ID != "a" {
		t.Fatalf("Place = %+v, %v", got, err)
	}
	if got := a.Conferences(ctx); len(got) != 1 || got[0] != "c1" {
		t.Fatalf("Conferences = %v", got)
	}
	a.Drain(ctx)
	if got := a.Conferences(ctx); len(got) != 0 {
		t.Fatalf("after drain Conferences = %v", got)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		for _, r := range b.Live() {
			if r.ID == "a" {
				return r.Draining
			}
		}
		return false
	}, "b does not see a draining")
	if got, err := b.Place(ctx, "c1"); err != nil || got.ID != "b" {
		t.Fatalf("Place after drain = %+v, %v; want b", got, err)
	}
	if got, err := a.Place(ctx, "c2"); err != nil || got.ID != "b" {
		t.Fatalf("a draining placed c2 on %+v, %v; want b", got, err)
	}
}

func TestMessagesReachOtherReplicas(t *testing.T) {
	a, b := twoReplicas(t)
	got := make(chan string, 4)
	for _, c := range []*Cluster{a, b} {
		unsub, err := c.Subscribe("signals", func(d []byte) { got <- c.opts.ReplicaID + ":" + string(d) })
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
	}
	a.nc.Flush()
	b.nc.Flush()
	if err := a.Publish(context.Background(), "signals", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "b:hello" {
			t.Fatalf("got %q, want b:hello", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b got nothing")
	}
	a.nc.Flush()
	b.nc.Flush()
	select {
	case m := <-got:
		t.Fatalf("unexpected %q: the publisher must not get its own message", m)
	default:
	}
}

func TestLinkAuthentication(t *testing.T) {
	url := natsURL(t)
	key := testKey(t)
	a := open(t, url, key, "a", secret())
	defer a.Close()
	other := bytes.Repeat([]byte{8}, 32)
	stranger := open(t, url, testKey(t), "s", other)
	defer stranger.Close()

	signed := func(c *Cluster, body string) *http.Request {
		r := httptest.NewRequest("POST", "https://a.internal:8443/internal/x?y=1", strings.NewReader(body))
		c.SignRequest(r)
		return r
	}
	if err := a.Authenticate(signed(a, "payload")); err != nil {
		t.Fatalf("own signature refused: %v", err)
	}
	cases := map[string]func() *http.Request{
		"other secret": func() *http.Request { return signed(stranger, "payload") },
		"body changed": func() *http.Request {
			r := signed(a, "payload")
			r.Body = httpBody("payloaD")
			return r
		},
		"path changed": func() *http.Request {
			r := signed(a, "payload")
			r.URL.Path = "/internal/z"
			return r
		},
		"stale": func() *http.Request {
			r := signed(a, "payload")
			r.Header.Set(HeaderDate, time.Now().Add(-time.Minute).UTC().Format(http.TimeFormat))
			return r
		},
		"unsigned": func() *http.Request { return httptest.NewRequest("GET", "/x", nil) },
	}
	for name, mk := range cases {
		if err := a.Authenticate(mk()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func httpBody(s string) *readCloser { return &readCloser{strings.NewReader(s)} }

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

func TestOpenRefusesNATSWithoutServer(t *testing.T) {
	_, err := Open(context.Background(), Options{
		NATSURL: "nats://127.0.0.1:1", ReplicaID: "a", NodeKey: "k", Secret: secret(),
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot connect to NATS at nats://127.0.0.1:1") {
		t.Fatalf("err = %v", err)
	}
}

func TestChoosePrefersRoom(t *testing.T) {
	c := &Cluster{self: Replica{ID: "a"}, seen: map[string]seenReplica{}}
	now := time.Now()
	set := func(rs ...Replica) {
		c.seen = map[string]seenReplica{}
		for _, r := range rs {
			if r.ID == "a" {
				c.self = r
			}
			c.seen[r.ID] = seenReplica{r: r, at: now}
		}
	}
	cases := []struct {
		name string
		rs   []Replica
		want string
	}{
		{"fewest participants", []Replica{{ID: "a", Participants: 5, MaxParticipants: 10}, {ID: "b", Participants: 2, MaxParticipants: 10}}, "b"},
		{"self on a tie", []Replica{{ID: "a", Participants: 2, MaxParticipants: 10}, {ID: "b", Participants: 2, MaxParticipants: 10}}, "a"},
		{"room beats fewer", []Replica{{ID: "a", Participants: 4, MaxParticipants: 4}, {ID: "b", Participants: 9, MaxParticipants: 100}}, "b"},
		{"all full: least full", []Replica{{ID: "a", Participants: 12, MaxParticipants: 10}, {ID: "b", Participants: 30, MaxParticipants: 20}}, "a"},
		{"draining skipped", []Replica{{ID: "a", Participants: 0, MaxParticipants: 10, Draining: true}, {ID: "b", Participants: 9, MaxParticipants: 10}}, "b"},
	}
	for _, tc := range cases {
		set(tc.rs...)
		got, err := c.choose()
		if err != nil || got.ID != tc.want {
			t.Errorf("%s: chose %+v, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	set(Replica{ID: "a", Draining: true})
	if _, err := c.choose(); err != ErrNoReplica {
		t.Fatalf("all draining: err = %v, want ErrNoReplica", err)
	}
}

func TestSuspectLastsUntilTheNextHeartbeat(t *testing.T) {
	a, _ := twoReplicas(t)
	has := func(id string) bool {
		for _, r := range a.Live() {
			if r.ID == id {
				return true
			}
		}
		return false
	}
	testwait.Until(t, 10*time.Second, func() bool { return has("b") }, "a does not see b")
	a.Suspect("b")
	if has("b") {
		t.Fatal("a suspected replica is still live")
	}
	if got, err := a.Place(context.Background(), "c-suspect"); err != nil || got.ID != "a" {
		t.Fatalf("Place = %+v, %v; want a", got, err)
	}
	// b is alive after all: its next heartbeat brings it back.
	testwait.Until(t, 10*time.Second, func() bool { return has("b") }, "b's heartbeat did not bring it back")
	a.Suspect("a") // never itself
	if !has("a") {
		t.Fatal("a replica suspected itself")
	}
}
