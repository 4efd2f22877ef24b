package federation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/netcut"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// healWait bounds what a test waits for after the network heals. It is
// generous for a busy machine, yet shorter than the first retry delay the
// partition tests give the outbox, so that only hearing from the peer again
// can deliver within it.
const healWait = 30 * time.Second

// partitionCall is a conference hosted by the ministry (h) with the agency
// (m) taking part, each node behind a proxy that can cut it off, Alice of
// the ministry and Bruno of the agency in the call, and the signals each
// node hands to its clients.
type partitionCall struct {
	h, m         *nodetest.Node
	hCut, mCut   *netcut.Proxy
	alice, bruno localuser.User
	conference   string
	logs         map[*nodetest.Node]*signalLog
}

func newPartitionCall(t *testing.T, f *nodetest.Federation, memberConfig func(*config.Config)) *partitionCall {
	t.Helper()
	pc := &partitionCall{logs: map[*nodetest.Node]*signalLog{}}
	pc.h, pc.hCut = f.StartBehind(t, "Ministry", nil)
	pc.m, pc.mCut = f.StartBehind(t, "Agency", memberConfig)
	nodetest.Trust(t, pc.h, pc.m)
	for _, n := range []*nodetest.Node{pc.h, pc.m} {
		l := &signalLog{}
		n.OnSignal(l.add)
		pc.logs[n] = l
	}
	ctx := context.Background()
	pc.alice, _ = nodetest.User(t, pc.h, "alice", "Alice")
	pc.bruno, _ = nodetest.User(t, pc.m, "bruno", "Bruno")
	conf := invitedConference(t, pc.h, pc.alice, "Partition", pc.m)
	pc.conference = conf.ID
	nodetest.Eventually(t, wait, "the invitation at the agency", func() bool {
		inv, _ := pc.m.Federation().Invitations(ctx, pc.bruno)
		return len(inv) == 1
	})
	if _, _, err := pc.m.Federation().Answer(ctx, pc.bruno, conf.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pc.h.Federation().Join(ctx, pc.alice, conf.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pc.m.Federation().Join(ctx, pc.bruno, conf.ID); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, wait, "both participants in the agency's replica", func() bool {
		v, _ := pc.m.Federation().ConferenceDetail(ctx, conf.ID)
		return len(v.Participants) == 2
	})
	pc.waitOutboxesEmpty(t, wait)
	return pc
}

// chat sends a line of u from n.
func (pc *partitionCall) chat(t *testing.T, n *nodetest.Node, u localuser.User, text string) federation.Signal {
	t.Helper()
	sig, err := n.Federation().SendSignal(context.Background(), u, pc.conference, federation.SignalContent{Kind: federation.SignalChat, Text: text})
	if err != nil {
		t.Fatalf("chat %q from %s: %v", text, n.Name(), err)
	}
	return sig
}

// waitOutboxesEmpty waits until neither node has a message pending.
func (pc *partitionCall) waitOutboxesEmpty(t *testing.T, d time.Duration) {
	t.Helper()
	for _, n := range []*nodetest.Node{pc.h, pc.m} {
		nodetest.Eventually(t, d, "the outbox of "+n.Name()+" to empty", func() bool {
			c, err := n.Store().CountOutbox(context.Background(), store.OutboxPending)
			return err == nil && c == 0
		})
	}
}

// headAttempts is how often n has tried to deliver its oldest pending
// message to peer (0 when none is pending).
func headAttempts(n *nodetest.Node, peer string) int {
	ms, err := n.Store().ListOutbox(context.Background(), peer, store.OutboxPending)
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[0].Attempts
}

// checkNothingLost asserts that no message of either node ended failed or
// expired.
func (pc *partitionCall) checkNothingLost(t *testing.T) {
	t.Helper()
	for _, n := range []*nodetest.Node{pc.h, pc.m} {
		for _, state := range []string{store.OutboxFailed, store.OutboxExpired} {
			ms, err := n.Store().ListOutbox(context.Background(), "", state)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				t.Errorf("%s: message %s to %s ended %s: %s", n.Name(), m.MessageID, m.Destination, state, m.LastError)
			}
		}
	}
}

// checkReplicaConverged asserts that the agency's replica has the host's
// head, and that it is locked as the host is.
func (pc *partitionCall) checkReplicaConverged(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	hv, err := pc.h.Federation().ConferenceDetail(ctx, pc.conference)
	if err != nil {
		t.Fatal(err)
	}
	mv, err := pc.m.Federation().ConferenceDetail(ctx, pc.conference)
	if err != nil {
		t.Fatal(err)
	}
	if mv.Head != hv.Head || !mv.Locked {
		t.Errorf("agency's replica: head %+v, locked %v; host: head %+v, locked %v", mv.Head, mv.Locked, hv.Head, hv.Locked)
	}
}

// checkSignals asserts that n handed exactly want to its clients, in order.
func (pc *partitionCall) checkSignals(t *testing.T, n *nodetest.Node, want []federation.Signal) {
	t.Helper()
	got := pc.logs[n].all()
	line := func(s federation.Signal) string { return s.ID + " " + s.User + ": " + s.Text }
	var g, w []string
	for _, s := range got {
		g = append(g, line(s))
	}
	for _, s := range want {
		w = append(w, line(s))
	}
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("%s handed its clients:\n%s\nwant, in this order:\n%s", n.Name(), strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

// A partition cuts both nodes off from each other, silently. Chat and a
// change of the log made on both sides during the cut arrive once each, in
// order, after the heal, well before the retry delay the outbox grew during
// the cut (a minute): the nodes probe each other, and a peer heard from
// again is retried at once (spec §8). The HTTP/2 connections from before
// the cut died silently; the client's health check drops them.
func TestPartitionHealsWithoutLossOrWaiting(t *testing.T) {
	f := nodetest.New(t)
	f.RetryBase = time.Minute
	pc := newPartitionCall(t, f, nil)
	h, m := pc.h, pc.m
	ctx := context.Background()

	pc.hCut.Cut()
	pc.mCut.Cut()
	var fromAlice, fromBruno []federation.Signal
	for i := range 3 {
		fromAlice = append(fromAlice, pc.chat(t, h, pc.alice, fmt.Sprintf("Alice, during the cut, %d", i+1)))
		fromBruno = append(fromBruno, pc.chat(t, m, pc.bruno, fmt.Sprintf("Bruno, during the cut, %d", i+1)))
	}
	if _, err := h.Federation().Moderate(ctx, pc.alice, pc.conference, federation.TypeLock, ""); err != nil {
		t.Fatal(err)
	}
	// Both sides have tried and failed: their next attempt is due in a
	// minute or more.
	nodetest.Eventually(t, healWait, "a failed attempt on each side", func() bool {
		return headAttempts(h, m.DID()) >= 1 && headAttempts(m, h.DID()) >= 1
	})
	for _, n := range []*nodetest.Node{h, m} {
		if failed, err := n.Store().CountOutbox(ctx, store.OutboxFailed); err != nil || failed != 0 {
			t.Fatalf("%s failed %d messages during the cut (%v)", n.Name(), failed, err)
		}
	}

	pc.hCut.Heal()
	pc.mCut.Heal()
	pc.waitOutboxesEmpty(t, healWait)
	pc.checkNothingLost(t)
	pc.checkReplicaConverged(t)
	// Each node's own lines at once, the other's after the heal.
	pc.checkSignals(t, h, append(append([]federation.Signal(nil), fromAlice...), fromBruno...))
	pc.checkSignals(t, m, append(append([]federation.Signal(nil), fromBruno...), fromAlice...))
}

// While the agency cannot fetch the ministry's DID document (its path to the
// ministry is cut; the ministry still reaches it), it keeps verifying the
// ministry's messages with the last good document, past the document's TTL:
// nothing the ministry sends is refused, and nothing is lost once the path
// heals (spec identity.md §4).
func TestStaleDIDDocumentKeepsDeliveryGoing(t *testing.T) {
	f := nodetest.New(t)
	f.MinRefetch = 10 * time.Second // as in production: a failed fetch is remembered
	pc := newPartitionCall(t, f, func(c *config.Config) { c.Federation.DIDCacheTTL = time.Second })
	h, m := pc.h, pc.m
	ctx := context.Background()
	synced := time.Now()

	pc.hCut.Cut() // the agency's path to the ministry, its document included
	early := pc.chat(t, m, pc.bruno, "Bruno, while the ministry is out of reach")
	// The agency has tried twice: the second time past the document's TTL,
	// so it has tried to fetch the document again and failed.
	nodetest.Eventually(t, 2*healWait, "two failed attempts of the agency", func() bool {
		return time.Since(synced) > 2*time.Second && headAttempts(m, h.DID()) >= 2
	})

	var fromAlice []federation.Signal
	for i := range 3 {
		fromAlice = append(fromAlice, pc.chat(t, h, pc.alice, fmt.Sprintf("Alice, to an agency that cannot reach her, %d", i+1)))
	}
	if _, err := h.Federation().Moderate(ctx, pc.alice, pc.conference, federation.TypeLock, ""); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, healWait, "the ministry's outbox to the agency to empty", func() bool {
		ms, err := h.Store().ListOutbox(ctx, m.DID(), store.OutboxPending)
		return err == nil && len(ms) == 0
	})
	pc.checkNothingLost(t)
	pc.checkReplicaConverged(t)
	pc.checkSignals(t, m, append([]federation.Signal{early}, fromAlice...))

	pc.hCut.Heal()
	pc.waitOutboxesEmpty(t, healWait)
	pc.checkNothingLost(t)
	pc.checkSignals(t, h, append(append([]federation.Signal(nil), fromAlice...), early))
}

// A node that has no usable DID document of a signer and cannot fetch one
// now answers 503 with Retry-After, not 401: the sender keeps the message
// and delivers it once the document can be fetched (spec §3.2 step 7, §8).
func TestUnresolvableSignerIsAskedToRetry(t *testing.T) {
	f := nodetest.New(t)
	f.MinRefetch = 10 * time.Second
	host, hostCut := f.StartBehind(t, "City", nil)
	member, _ := f.StartBehind(t, "Agency", nil)
	nodetest.Trust(t, host, member)
	ctx := context.Background()
	carol, _ := nodetest.User(t, host, "carol", "Carol")
	bruno, _ := nodetest.User(t, member, "bruno", "Bruno")
	if _, err := host.Resolver().Resolve(ctx, member.DID()); err != nil {
		t.Fatal(err)
	}
	member.Resolver().Forget(host.DID())

	hostCut.Cut() // the member cannot reach the host; the host reaches the member
	conf := invitedConference(t, host, carol, "Unresolvable", member)
	var pending store.OutboxMessage
	nodetest.Eventually(t, healWait, "the member's 503 in the host's outbox", func() bool {
		ms, err := host.Store().ListOutbox(ctx, member.DID(), store.OutboxPending)
		if err != nil || len(ms) == 0 {
			return false
		}
		pending = ms[0]
		return strings.HasPrefix(pending.LastError, "503 unavailable: cannot resolve "+host.DID()+" now")
	})

	// The answer itself, to the same message sent again by hand.
	keyFrag, priv, err := host.Keys().CurrentECDSA()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, member.Config.Node.PublicURL+federation.Path+"/inbox", bytes.NewReader(pending.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := federation.SignRequest(req, pending.Body, host.DID()+"#"+keyFrag, priv, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	retryAfter, convErr := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || body.Error.Code != "unavailable" ||
		body.Error.Message != "cannot resolve "+host.DID()+" now" || convErr != nil || retryAfter < 1 || retryAfter > 10 {
		t.Fatalf("answer: %d, Retry-After %q, %+v (%v); want 503 unavailable, cannot resolve %s now, Retry-After 1 to 10",
			resp.StatusCode, resp.Header.Get("Retry-After"), body, err, host.DID())
	}
	if _, err := member.Store().GetConference(ctx, conf.ID); err == nil {
		t.Fatal("the member applied a message it could not verify")
	}

	hostCut.Heal()
	nodetest.Eventually(t, healWait, "the invitation at the member", func() bool {
		inv, _ := member.Federation().Invitations(ctx, bruno)
		return len(inv) == 1 && inv[0].Conference == conf.ID
	})
	for _, state := range []string{store.OutboxFailed, store.OutboxExpired} {
		if ms, err := host.Store().ListOutbox(ctx, "", state); err != nil || len(ms) != 0 {
			t.Errorf("host's outbox has %d %s messages (%v)", len(ms), state, err)
		}
	}
}
