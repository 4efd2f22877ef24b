package federation_test

import (
	"context"
	"sync"
	"testing"

	"github.com/entente-org/entente/federation"
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

func TestSignalsCrossOrganisations(t *testing.T) {
	f := nodetest.New(t)
	a := f.Start(t, "Ministry", nil)
	b := f.Start(t, "Agency", nil)
	c := f.Start(t, "City", nil)
	nodetest.Trust(t, a, b, c)
	logs := map[*nodetest.Node]*signalLog{}
	for _, n := range []*nodetest.Node{a, b, c} {
		l := &signalLog{}
		n.OnSignal(l.add)
		logs[n] = l
	}
	ctx := context.Background()
	alice, _ := nodetest.User(t, a, "alice", "Alice")
	bruno, _ := nodetest.User(t, b, "bruno", "Bruno")
	chloe, _ := nodetest.User(t, c, "chloe", "Chloé")
	outsider, _ := nodetest.User(t, b, "outsider", "Not in the call")

	conf, _ := a.Federation().CreateConference(ctx, alice, "Signals", nil)
	for _, m := range []struct {
		n *nodetest.Node
		u federation.LocalUser
	}{{b, bruno}, {c, chloe}} {
		if _, err := a.Federation().Invite(ctx, alice, conf.ID, m.n.DID(), nil); err != nil {
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
		u federation.LocalUser
	}{{a, alice}, {b, bruno}, {c, chloe}} {
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

	// A chat line from the agency reaches the ministry (the host) and the
	// city, once each, with the organisation the agency vouched for.
	sent, err := b.Federation().SendSignal(ctx, bruno, conf.ID, federation.SignalContent{Kind: federation.SignalChat, Text: "Bonjour à tous"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*nodetest.Node{a, b, c} {
		nodetest.Eventually(t, wait, "the chat line at "+n.Name(), func() bool { return len(logs[n].all()) == 1 })
		got := logs[n].all()[0]
		if got.ID != sent.ID || got.Kind != "chat" || got.Text != "Bonjour à tous" || got.User != "bruno@"+b.DID() || got.Organisation != "Agency" || got.Conference != conf.ID {
			t.Errorf("%s received %+v", n.Name(), got)
		}
	}
	// A raised hand from the city, and the host's moderator asking the
	// agency's user to mute.
	if _, err := c.Federation().SendSignal(ctx, chloe, conf.ID, federation.SignalContent{Kind: federation.SignalHand, On: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Federation().SendSignal(ctx, alice, conf.ID, federation.SignalContent{Kind: federation.SignalMuteRequest, Ref: "bruno@" + b.DID()}); err != nil {
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
	if _, err := b.Federation().SendSignal(ctx, outsider, conf.ID, federation.SignalContent{Kind: "chat", Text: "hi"}); !isStatus(err, 403) {
		t.Errorf("chat from a non-participant: %v", err)
	}
	if _, err := b.Federation().SendSignal(ctx, bruno, conf.ID, federation.SignalContent{Kind: federation.SignalMuteRequest, Ref: "alice@" + a.DID()}); !isStatus(err, 403) {
		t.Errorf("mute request from a member node: %v", err)
	}
	if _, err := b.Federation().SendSignal(ctx, bruno, conf.ID, federation.SignalContent{Kind: "chat"}); !isStatus(err, 400) {
		t.Errorf("empty chat: %v", err)
	}
}
