package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/testwait"
)

func spanOf(t *testing.T, c *Cluster, conference string) string {
	t.Helper()
	rs, err := c.Span(context.Background(), conference)
	if err != nil {
		t.Fatalf("Span: %v", err)
	}
	s := ""
	for _, r := range rs {
		s += fmt.Sprintf("%s:%d ", r.ID, r.Participants)
	}
	return s
}

// A conference fills its owner up to max_participants, then grows onto the
// least loaded other replica, fills it, then the next; every replica
// routes the same way, whichever is asked.
func TestPlaceParticipantSpans(t *testing.T) {
	url := natsURL(t)
	key := testKey(t)
	var rs []*Cluster
	for _, id := range []string{"a", "b", "c"} {
		c, err := Open(context.Background(), Options{
			NATSURL: url, ReplicaID: id, InternalURL: "https://" + id + ".internal:8443",
			NodeKey: key, MaxParticipants: 2, Secret: secret(),
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rs = append(rs, c)
	}
	a, b, c := rs[0], rs[1], rs[2]
	testwait.Until(t, 10*time.Second, func() bool { return len(a.Live()) == 3 && len(b.Live()) == 3 && len(c.Live()) == 3 },
		"the replicas do not see each other")
	ctx := context.Background()
	const conf = "conf-span@did:web:x"
	if o, err := a.Place(ctx, conf); err != nil || o.ID != "a" {
		t.Fatalf("Place = %+v, %v; want a", o, err)
	}
	// c is busier than b with other conferences.
	c.SetLoad(1)
	testwait.Until(t, 10*time.Second, func() bool {
		for _, r := range b.Live() {
			if r.ID == "c" && r.Participants == 1 {
				return true
			}
		}
		return false
	}, "b does not see c's load")

	want := []string{"a", "a", "b", "b", "c"}
	askers := []*Cluster{c, b, a, c, b}
	for i, w := range want {
		got, err := askers[i].PlaceParticipant(ctx, conf)
		if err != nil || got.ID != w {
			t.Fatalf("participant %d: PlaceParticipant on %s = %+v, %v; want %s", i+1, askers[i].Self().ID, got, err, w)
		}
	}
	if got := spanOf(t, b, conf); got != "a:2 b:2 c:1 " {
		t.Fatalf("span = %q, want a:2 b:2 c:1", got)
	}
	// b reports one of its two arrived: the other, on its way, still
	// counts, and the next participant goes to c.
	if err := b.SetConferenceLoad(ctx, conf, 1); err != nil {
		t.Fatal(err)
	}
	if got := spanOf(t, a, conf); got != "a:2 b:2 c:1 " {
		t.Fatalf("span after b's first arrival = %q, want a:2 b:2 c:1", got)
	}
	if got, err := a.PlaceParticipant(ctx, conf); err != nil || got.ID != "c" {
		t.Fatalf("with b's second on its way: PlaceParticipant = %+v, %v; want c", got, err)
	}
	// Both arrived, then one left: b has room again and is asked first.
	for _, n := range []int{2, 1} {
		if err := b.SetConferenceLoad(ctx, conf, n); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := c.PlaceParticipant(ctx, conf); err != nil || got.ID != "b" {
		t.Fatalf("after b's leave: PlaceParticipant = %+v, %v; want b", got, err)
	}
	// A replica with nobody left, and nobody on the way, leaves the span.
	for _, n := range []int{2, 0} {
		if err := c.SetConferenceLoad(ctx, conf, n); err != nil {
			t.Fatal(err)
		}
	}
	if got := spanOf(t, a, conf); got != "a:2 b:2 " {
		t.Fatalf("span after c left = %q, want a:2 b:2", got)
	}
	for _, r := range []struct {
		c    *Cluster
		want bool
	}{{a, true}, {b, true}, {c, false}} {
		if in, err := r.c.InSpan(ctx, conf); err != nil || in != r.want {
			t.Fatalf("%s: InSpan = %v, %v; want %v", r.c.Self().ID, in, err, r.want)
		}
	}
	// A dead replica drops out of the span: b dies without a word.
	b.stop()
	<-b.done
	testwait.Until(t, 3*RosterTTL, func() bool { return len(a.Live()) == 2 }, "a still sees b")
	if got := spanOf(t, a, conf); got != "a:2 " {
		t.Fatalf("span after b died = %q, want a:2", got)
	}
	if got, err := a.PlaceParticipant(ctx, conf); err != nil || got.ID != "c" {
		t.Fatalf("after b's death: PlaceParticipant = %+v, %v; want c", got, err)
	}
}
