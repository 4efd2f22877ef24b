package federation_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
)

// signalLog collects the signals a node hands to its clients.
type signalLog struct {
	mu  sync.Mutex
	got []federation.Signal
}

func (l *signalLog) add(s federation.Signal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, s)
}

func (l *signalLog) all() []federation.Signal {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]federation.Signal(nil), l.got...)
}

// signalCall is a conference hosted by the ministry (a) with the agency (b)
// and the city (c) taking part, one user of each in the call, and a log of
// the signals each node hands to its clients.
type signalCall struct {
	f                   *nodetest.Federation
	a, b, c             *nodetest.Node
	aliceToken          string // alice's client API token at a
	alice, bruno, chloe localuser.User
	outsider            localuser.User // a user of b, not in the call
	conference          string
	logs                map[*nodetest.Node]*signalLog
}

func newSignalCall(t *testing.T) *signalCall {
	t.Helper()
	f, a, b, c := threeNodes(t)
	sc := &signalCall{f: f, a: a, b: b, c: c, logs: map[*nodetest.Node]*signalLog{}}
	for _, n := range []*nodetest.Node{a, b, c} {
		l := &signalLog{}
		n.OnSignal(l.add)
		sc.logs[n] = l
	}
	ctx := context.Background()
	sc.alice, sc.aliceToken = nodetest.User(t, a, "alice", "Alice")
	sc.bruno, _ = nodetest.User(t, b, "bruno", "Bruno")
	sc.chloe, _ = nodetest.User(t, c, "chloe", "Chloé")
	sc.outsider, _ = nodetest.User(t, b, "outsider", "Not in the call")

	conf, err := a.Federation().CreateConference(ctx, sc.alice, "Signals", nil)
	if err != nil {
		t.Fatal(err)
	}
	sc.conference = conf.ID
	for _, m := range []struct {
		n *nodetest.Node
		u localuser.User
	}{{b, sc.bruno}, {c, sc.chloe}} {
		if _, err := a.Federation().Invite(ctx, sc.alice, conf.ID, m.n.DID(), nil); err != nil {
			t.Fatal(err)
		}
		nodetest.Eventually(t, wait, "invitation", func() bool {
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
	}{{a, sc.alice}, {b, sc.bruno}, {c, sc.chloe}} {
		if _, _, err := m.n.Federation().Join(ctx, m.u, conf.ID); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, wait, "every replica knows all three participants", func() bool {
		for _, n := range []*nodetest.Node{b, c} {
			v, _ := n.Federation().ConferenceDetail(ctx, conf.ID)
			if len(v.Participants) != 3 {
				return false
			}
		}
		return true
	})
	return sc
}

func TestSignalsCrossOrganisations(t *testing.T) {
	sc := newSignalCall(t)
	a, b, c, logs := sc.a, sc.b, sc.c, sc.logs
	bruno, chloe, alice, outsider := sc.bruno, sc.chloe, sc.alice, sc.outsider
	ctx := context.Background()

	// A chat line from the agency reaches the ministry (the host) and the
	// city, once each, with the organisation the agency vouched for.
	sent, err := b.Federation().SendSignal(ctx, bruno, sc.conference, federation.SignalContent{Kind: federation.SignalChat, Text: "Bonjour à tous"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*nodetest.Node{a, b, c} {
		nodetest.Eventually(t, wait, "the chat line at "+n.Name(), func() bool { return len(logs[n].all()) == 1 })
		got := logs[n].all()[0]
		if got.ID != sent.ID || got.Kind != "chat" || got.Text != "Bonjour à tous" || got.User != "bruno@"+b.DID() || got.Organisation != "Agency" || got.Conference != sc.conference {
			t.Errorf("%s received %+v", n.Name(), got)
		}
	}
	// A raised hand from the city, and the host's moderator asking the
	// agency's user to mute.
	if _, err := c.Federation().SendSignal(ctx, chloe, sc.conference, federation.SignalContent{Kind: federation.SignalHand, On: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Federation().SendSignal(ctx, alice, sc.conference, federation.SignalContent{Kind: federation.SignalMuteRequest, Ref: "bruno@" + b.DID()}); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, wait, "the hand and the mute request at the agency", func() bool { return len(logs[b].all()) == 3 })
	kinds := map[string]federation.Signal{}
	for _, s := range logs[b].all() {
		kinds[s.Kind] = s
	}
	if h := kinds["hand"]; !h.On || h.User != "chloe@"+c.DID() {
		t.Errorf("hand at the agency: %+v", h)
	}
	if m := kinds["mute.request"]; m.Ref != "bruno@"+b.DID() || m.User != "alice@"+a.DID() {
		t.Errorf("mute request at the agency: %+v", m)
	}

	// Refusals: a user not in the call, a member node asking others to
	// mute, an empty chat line.
	if _, err := b.Federation().SendSignal(ctx, outsider, sc.conference, federation.SignalContent{Kind: "chat", Text: "hi"}); !isStatus(err, 403) {
		t.Errorf("chat from a non-participant: %v", err)
	}
	if _, err := b.Federation().SendSignal(ctx, bruno, sc.conference, federation.SignalContent{Kind: federation.SignalMuteRequest, Ref: "alice@" + a.DID()}); !isStatus(err, 403) {
		t.Errorf("mute request from a member node: %v", err)
	}
	if _, err := b.Federation().SendSignal(ctx, bruno, sc.conference, federation.SignalContent{Kind: "chat"}); !isStatus(err, 400) {
		t.Errorf("empty chat: %v", err)
	}
}

func TestBridgedChatCrossesOrganisations(t *testing.T) {
	sc := newSignalCall(t)
	a, b, c := sc.a, sc.b, sc.c
	ctx := context.Background()
	const matrixUser = "@dora:matrix.agency.example"

	// The agency's bridge writes a Matrix user's line: the node itself
	// sends it, and every node receives it under the Matrix user, vouched
	// for by the agency.
	sent, err := b.Federation().SendSignal(ctx, localuser.User{}, sc.conference,
		federation.SignalContent{Kind: federation.SignalChat, Text: "Hello from Matrix", As: matrixUser})
	if err != nil {
		t.Fatal(err)
	}
	want := federation.Signal{Conference: sc.conference, ID: sent.ID, Kind: "chat", User: b.DID(),
		Text: "Hello from Matrix", At: sent.At, Organisation: "Agency", As: matrixUser}
	for _, n := range []*nodetest.Node{a, b, c} {
		nodetest.Eventually(t, wait, "the bridged line at "+n.Name(), func() bool { return len(sc.logs[n].all()) == 1 })
		if got := sc.logs[n].all()[0]; !got.At.Equal(want.At) || got.Conference != want.Conference || got.ID != want.ID ||
			got.Kind != want.Kind || got.User != want.User || got.Text != want.Text || got.Organisation != want.Organisation || got.As != want.As {
			t.Errorf("%s received %+v, want %+v", n.Name(), got, want)
		}
	}
	// The host's own bridge, and an edit and a redaction from the agency's.
	if _, err := a.Federation().SendSignal(ctx, localuser.User{}, sc.conference,
		federation.SignalContent{Kind: federation.SignalChat, Text: "Hello from the ministry's Matrix", As: "@eve:matrix.ministry.example"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []federation.SignalContent{
		{Kind: federation.SignalChatEdit, Ref: sent.ID, Text: "Hello again from Matrix", As: matrixUser},
		{Kind: federation.SignalChatRedact, Ref: sent.ID, As: matrixUser},
	} {
		if _, err := b.Federation().SendSignal(ctx, localuser.User{}, sc.conference, k); err != nil {
			t.Fatalf("%s: %v", k.Kind, err)
		}
	}
	nodetest.Eventually(t, wait, "four signals at the city", func() bool { return len(sc.logs[c].all()) == 4 })
	for i, w := range []struct{ kind, user, as, org, ref string }{
		{"chat", b.DID(), matrixUser, "Agency", ""},
		{"chat", a.DID(), "@eve:matrix.ministry.example", "Ministry", ""},
		{"chat.edit", b.DID(), matrixUser, "Agency", sent.ID},
		{"chat.redact", b.DID(), matrixUser, "Agency", sent.ID},
	} {
		got := sc.logs[c].all()[i]
		if got.Kind != w.kind || got.User != w.user || got.As != w.as || got.Organisation != w.org || got.Ref != w.ref {
			t.Errorf("signal %d at the city = %+v, want %+v", i, got, w)
		}
	}

	refusals := []struct {
		name   string
		u      localuser.User
		c      federation.SignalContent
		status int
	}{
		{"as on a hand", localuser.User{}, federation.SignalContent{Kind: federation.SignalHand, On: true, As: matrixUser}, 400},
		{"as on a reaction", localuser.User{}, federation.SignalContent{Kind: federation.SignalReaction, Text: "👍", As: matrixUser}, 400},
		{"as that is not a Matrix user", localuser.User{}, federation.SignalContent{Kind: "chat", Text: "hi", As: "dora"}, 400},
		{"as longer than 255 bytes", localuser.User{}, federation.SignalContent{Kind: "chat", Text: "hi", As: "@" + strings.Repeat("d", 250) + ":m.example"}, 400},
		{"as from a user of the node", sc.bruno, federation.SignalContent{Kind: "chat", Text: "hi", As: matrixUser}, 403},
		{"the node without as", localuser.User{}, federation.SignalContent{Kind: "chat", Text: "hi"}, 403},
	}
	for _, r := range refusals {
		if _, err := b.Federation().SendSignal(ctx, r.u, sc.conference, r.c); !isStatus(err, r.status) {
			t.Errorf("%s: %v, want status %d", r.name, err, r.status)
		}
	}
}

// A node that does not take part in a conference cannot speak for a Matrix
// user in it, and "as" is refused on what is not chat, however the host
// receives the signal.
func TestBridgedChatRefusedAtTheHost(t *testing.T) {
	fx := newSecFixture(t)
	signal := func(from *nodetest.Node, sender, content string) []byte {
		p := fx.payload(from, federation.TypeSignal, content)
		p.Sender = sender
		p.Expires = p.Created + 2*time.Minute.Milliseconds() // the most a signal may live (spec §5.1)
		return fx.envelope(t, from, p)
	}
	const chat = `{"kind":"chat","text":"hi","as":"@dora:matrix.example"}`
	cases := []struct {
		name string
		by   *nodetest.Node
		body []byte
		want secRefusal
	}{
		{"from a trusted node never invited", fx.other, signal(fx.other, fx.other.DID(), chat),
			secRefusal{403, "forbidden", fx.other.DID() + " does not take part in " + fx.conference}},
		{"from an invited node that has not accepted", fx.attacker, signal(fx.attacker, fx.attacker.DID(), chat),
			secRefusal{403, "forbidden", fx.attacker.DID() + " does not take part in " + fx.conference}},
		{"sent by a user of the node", fx.attacker, signal(fx.attacker, "eve@"+fx.attacker.DID(), chat),
			secRefusal{403, "forbidden", "must be sent by its node"}},
		{"on a hand", fx.attacker, signal(fx.attacker, fx.attacker.DID(), `{"kind":"hand","on":true,"as":"@dora:matrix.example"}`),
			secRefusal{400, "bad_request", "as is only allowed on chat, chat.edit and chat.redact, not on hand"}},
	}
	for _, tc := range cases {
		fx.attack(t, tc.name, tc.want, func(t *testing.T) *http.Request {
			return secSigned(t, tc.by, http.MethodPost, fx.inbox, tc.body, time.Now())
		})
	}
	// Once the agency accepts, its bridged chat is taken.
	body := fx.accept(t)
	if got := fx.deliver(t, fx.attacker, fx.inbox, body); got.status != http.StatusOK {
		t.Fatalf("accept: %d %s", got.status, got.raw)
	}
	if got := fx.deliver(t, fx.attacker, fx.inbox, signal(fx.attacker, fx.attacker.DID(), chat)); got.status != http.StatusOK || got.receipt.Status != "accepted" {
		t.Errorf("bridged chat from a node that accepted: %d %+v %s", got.status, got.receipt, got.raw)
	}
}
