package federation_test

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// logRecords keeps what a node logs: each record's message and attributes.
type logRecords struct {
	mu   sync.Mutex
	recs []map[string]string
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, m)
	return nil
}

// with returns the records whose message is msg.
func (l *logRecords) with(msg string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range l.recs {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// orgOf is how a participant's institution is shown: the name and the
// peer's own label beside it.
type orgOf struct{ organisation, label string }

func shownOrgs(ps []federation.ParticipantView) map[string]orgOf {
	out := map[string]orgOf{}
	for _, p := range ps {
		out[p.User] = orgOf{p.Organisation, p.OrganisationLabel}
	}
	return out
}

// A trusted peer that labels its users with another institution's name
// (here ours) gets its users shown under the name each node's operator gave
// the peer, with its own label only beside it; the attempt is logged, and
// the join, signed as it is, stays in every log.
func TestOrganisationShownIsOurNameForThePeer(t *testing.T) {
	f := nodetest.New(t)
	logs := map[string]*logRecords{"a": {}, "b": {}, "c": {}}
	f.Logger = slog.New(logs["a"])
	a := f.Start(t, "Ministry", nil)
	f.Logger = slog.New(logs["b"])
	b := f.Start(t, "Agency", func(c *config.Config) { c.Node.Name = "Ministry" })
	f.Logger = slog.New(logs["c"])
	c := f.Start(t, "City", nil)
	nodetest.Trust(t, a, b, c)
	ctx := context.Background()
	for _, e := range []struct {
		at   *nodetest.Node
		name string
	}{{a, "National Statistics Agency"}, {c, "Agence de la statistique"}} {
		err := federation.TrustList{Store: e.at.Store()}.Add(ctx, store.Peer{DID: b.DID(), Name: e.name,
			MayInvite: true, MayRelayMedia: true, AddedAt: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
	}
	signals := map[*nodetest.Node]*signalLog{a: {}, b: {}, c: {}}
	for n, l := range signals {
		n.OnSignal(l.add)
	}
	alice, aliceToken := nodetest.User(t, a, "alice", "Alice")
	bruno, _ := nodetest.User(t, b, "bruno", "Bruno")
	chloe, chloeToken := nodetest.User(t, c, "chloe", "Chloé")
	conf, err := a.Federation().CreateConference(ctx, alice, "Labels", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		n *nodetest.Node
		u localuser.User
	}{{b, bruno}, {c, chloe}} {
		if _, err := a.Federation().Invite(ctx, alice, conf.ID, m.n.DID(), nil); err != nil {
			t.Fatal(err)
		}
		nodetest.Eventually(t, wait, "the invitation at "+m.n.Name(), func() bool {
			inv, _ := m.n.Federation().Invitations(ctx, m.u)
			return len(inv) == 1
		})
		if _, _, err := m.n.Federation().Answer(ctx, m.u, conf.ID, true); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []struct {
		n *nodetest.Node
		u localuser.User
	}{{a, alice}, {b, bruno}, {c, chloe}} {
		if _, _, err := m.n.Federation().Join(ctx, m.u, conf.ID); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, wait, "the city's replica to hold all three", func() bool {
		v, _ := c.Federation().ConferenceDetail(ctx, conf.ID)
		return len(v.Participants) == 3
	})
	aliceRef, brunoRef, chloeRef := "alice@"+a.DID(), "bruno@"+b.DID(), "chloe@"+c.DID()

	// The participants API and the conference, at the host and at a member.
	views := []struct {
		name  string
		api   *apiClient
		shown map[string]orgOf
	}{
		{"host", clientFor(t, f, a, aliceToken), map[string]orgOf{
			aliceRef: {"Ministry", ""}, brunoRef: {"National Statistics Agency", "Ministry"}, chloeRef: {"City", ""}}},
		{"city", clientFor(t, f, c, chloeToken), map[string]orgOf{
			aliceRef: {"Ministry", ""}, brunoRef: {"Agence de la statistique", "Ministry"}, chloeRef: {"City", ""}}},
	}
	for _, v := range views {
		var roster federation.RosterView
		v.api.must(http.StatusOK, "GET", "/conferences/"+conf.ID+"/participants", nil, &roster)
		if got := shownOrgs(roster.Participants); len(got) != 3 || got[aliceRef] != v.shown[aliceRef] ||
			got[brunoRef] != v.shown[brunoRef] || got[chloeRef] != v.shown[chloeRef] {
			t.Errorf("%s: participants API shows %v, want %v", v.name, got, v.shown)
		}
		if got := shownOrgs(v.api.conference(conf.ID).Participants); len(got) != 3 || got[aliceRef] != v.shown[aliceRef] ||
			got[brunoRef] != v.shown[brunoRef] || got[chloeRef] != v.shown[chloeRef] {
			t.Errorf("%s: conference shows %v, want %v", v.name, got, v.shown)
		}
	}

	// Bruno's chat line shows under each node's name for the agency; his
	// own node shows its own name, which is its business.
	sent, err := b.Federation().SendSignal(ctx, bruno, conf.ID, federation.SignalContent{Kind: "chat", Text: "Bonjour"})
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[*nodetest.Node]string{a: "National Statistics Agency", b: "Ministry", c: "Agence de la statistique"} {
		nodetest.Eventually(t, wait, "the line at "+n.Name(), func() bool { return len(signals[n].all()) == 1 })
		if got := signals[n].all()[0]; got.ID != sent.ID || got.Organisation != want {
			t.Errorf("%s shows the line as %+v, want organisation %q", n.Name(), got, want)
		}
	}

	// The claim is logged where it is seen, and only Bruno's.
	const claim = "organisation label claims another organisation"
	for name, l := range map[string]*logRecords{"host": logs["a"], "city": logs["c"]} {
		recs := l.with(claim)
		if len(recs) == 0 {
			t.Errorf("%s logged no claim", name)
		}
		for _, r := range recs {
			if r["peer"] != b.DID() || r["user"] != brunoRef || r["label"] != "Ministry" || r["claimed"] != a.DID() {
				t.Errorf("%s logged %v", name, r)
			}
		}
	}
	// The join stays as the agency signed it.
	parts, err := c.Store().ListParticipants(ctx, conf.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p.User == brunoRef && p.Organisation != "Ministry" {
			t.Errorf("the city's replica holds bruno's label as %q, not as signed", p.Organisation)
		}
	}
}
