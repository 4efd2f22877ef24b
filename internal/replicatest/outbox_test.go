package replicatest

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/internal/testwait"
	"github.com/entente-org/entente/store"
)

// The ministry runs as three replicas behind a load balancer. The agency
// federates with it while its requests land on one replica after the other;
// the ministry's messages to the agency are queued by requests made on
// every replica. The agency becomes unreachable, more is queued, and the
// replica delivering to it (the holder of its outbox lease) is killed with
// SIGKILL in the middle of the agency's queue. A survivor takes the agency
// over once the dead one's lease ends, and the agency receives every
// message exactly once, in order (spec/federation.md §8).
func TestReplicaKilledMidOutbox(t *testing.T) {
	const (
		lease     = 3 * time.Second
		beforeCut = 4  // moderation records delivered before the cut
		afterCut  = 12 // queued while the agency is unreachable
	)
	ctx := context.Background()
	f := nodetest.New(t)
	agency, agencyPath := f.StartBehind(t, "Agency", nil)
	bruno, _ := nodetest.User(t, agency, "bruno", "Bruno")
	n := Start(t, bin, 3, Options{CA: f.CA, CAFile: f.CAFile, Env: []string{"ENTENTE_FEDERATION_DELIVERY_LEASE=" + lease.String()}})
	ministry := openStore(t, n)
	nodeDID := "did:web:" + strings.ReplaceAll(n.Balancer.Addr(), ":", "%3A")
	n.CLI(t, "peers", "add", agency.DID(), "--name", "Agency")
	if err := (federation.TrustList{Store: agency.Store()}).Add(ctx, store.Peer{
		DID: nodeDID, Name: "Ministry", MayInvite: true, AddedAt: time.Now().UTC(),
	}); err != nil {
		t.Fatal(err)
	}

	alice := n.User(t, "alice")
	var c conference
	if err := n.API(n.Replicas[0].URL, alice, "POST", "/conferences", map[string]any{"title": "Replicated"}, &c); err != nil {
		t.Fatal(err)
	}
	conf := c.ID
	if err := n.API(n.Replicas[1].URL, alice, "POST", "/conferences/"+url.PathEscape(conf)+"/invitations",
		map[string]any{"node": agency.DID()}, nil); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, generous, func() bool {
		inv, _ := agency.Federation().Invitations(ctx, bruno)
		return len(inv) == 1 && inv[0].Conference == conf && inv[0].Host == nodeDID
	}, "the invitation at the agency")

	// Each of the agency's requests goes through the load balancer with one
	// replica alone in rotation: its answer lands on the first replica, its
	// join on the second, a chat line on the third. Each replica's count of
	// federation requests shows where each landed.
	agencySends := func(r *Replica, what string, send func() error, arrived func() bool) {
		t.Helper()
		for _, o := range n.Replicas {
			n.Balancer.Remove(o.Addr)
		}
		n.Balancer.Add(r.Addr)
		n.Balancer.Drop() // the agency's open connection goes elsewhere
		before := federationRequests(t, n)
		if err := send(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		testwait.Until(t, generous, arrived, "%s at the ministry", what)
		// Its receipt is back: nothing of it can land anywhere else.
		testwait.Until(t, generous, func() bool {
			pending, err := agency.Store().CountOutbox(ctx, store.OutboxPending)
			return err == nil && pending == 0
		}, "the ministry's receipt for %s at the agency", what)
		after := federationRequests(t, n)
		for i, o := range n.Replicas {
			if rose := after[i] > before[i]; rose != (o == r) {
				t.Fatalf("%s: federation requests per replica went from %v to %v; want only %s's to rise", what, before, after, r.ID)
			}
		}
		t.Logf("%s landed on %s (federation requests per replica %v → %v)", what, r.ID, before, after)
	}
	agencySends(n.Replicas[0], "the agency's acceptance", func() error {
		_, _, err := agency.Federation().Answer(ctx, bruno, conf, true)
		return err
	}, func() bool {
		cn, err := ministry.GetConferenceNode(ctx, conf, agency.DID())
		return err == nil && cn.State == "accepted"
	})
	agencySends(n.Replicas[1], "Bruno's join", func() error {
		_, _, err := agency.Federation().Join(ctx, bruno, conf)
		return err
	}, func() bool {
		ps, _ := ministry.ListParticipants(ctx, conf)
		return len(ps) == 1 && ps[0].User == "bruno@"+agency.DID()
	})
	var line federation.Signal
	agencySends(n.Replicas[2], "Bruno's chat line", func() error {
		var err error
		line, err = agency.Federation().SendSignal(ctx, bruno, conf, federation.SignalContent{Kind: federation.SignalChat, Text: "hello"})
		return err
	}, func() bool {
		l, err := ministry.GetChatLine(ctx, conf, line.ID)
		return err == nil && l.Sender == "bruno@"+agency.DID()
	})
	for _, r := range n.Replicas {
		n.Balancer.Remove(r.Addr)
		n.Balancer.Add(r.Addr)
	}

	// Alice locks and unlocks the conference through each replica in turn:
	// every replica queues messages to the agency, whichever delivers them.
	moderated := 0
	moderate := func(count int) {
		t.Helper()
		for range count {
			action := "lock"
			if moderated%2 == 1 {
				action = "unlock"
			}
			r := n.Replicas[moderated%len(n.Replicas)]
			if err := n.API(r.URL, alice, "POST", "/conferences/"+url.PathEscape(conf)+"/"+action, nil, nil); err != nil {
				t.Fatalf("%s through %s: %v", action, r.ID, err)
			}
			moderated++
		}
	}
	agencyHasAll := func() bool {
		want, err1 := ministry.GetConference(ctx, conf)
		got, err2 := agency.Store().GetConference(ctx, conf)
		return err1 == nil && err2 == nil && got.HeadSeq == want.HeadSeq
	}
	nothingPending := func() bool {
		pending, err := ministry.CountOutbox(ctx, store.OutboxPending)
		return err == nil && pending == 0
	}
	moderate(beforeCut)
	testwait.Until(t, generous, agencyHasAll, "the first %d moderation records at the agency", beforeCut)
	// Nothing in flight when the path is cut: every receipt is back.
	testwait.Until(t, generous, nothingPending, "the first %d moderation records recorded delivered", beforeCut)

	// The agency becomes unreachable; the rest of the queue waits. The
	// replica holding the agency's lease keeps renewing it while its
	// delivery hangs: that one is killed in the middle of the queue.
	agencyPath.Cut()
	cutAt := time.Now()
	moderate(afterCut)
	var dying store.OutboxLease
	testwait.Until(t, generous, func() bool {
		var err error
		dying, err = ministry.GetOutboxLease(ctx, agency.DID())
		return err == nil && dying.ExpiresAt.After(cutAt.Add(lease))
	}, "a replica delivering to the agency under a lease renewed after the cut")
	victim := holding(t, n, dying)
	victim.Kill(t)
	killedAt := time.Now()
	n.Balancer.Remove(victim.Addr) // as a load balancer's health check would
	if pending, err := ministry.ListOutbox(ctx, agency.DID(), store.OutboxPending); err != nil || len(pending) != afterCut {
		t.Fatalf("when %s died, %d messages to the agency were pending (%v), want %d", victim.ID, len(pending), err, afterCut)
	}
	agencyPath.Heal()

	var took store.OutboxLease
	testwait.Until(t, generous, func() bool {
		var err error
		took, err = ministry.GetOutboxLease(ctx, agency.DID())
		return err == nil && took.Token > dying.Token
	}, "the agency's lease taken over from %s", victim.ID)
	tookOver := time.Since(killedAt)
	survivor := holding(t, n, took)
	if survivor == victim {
		t.Fatalf("the agency's lease %+v is still %s's, killed", took, victim.ID)
	}
	testwait.Until(t, generous, agencyHasAll, "the whole log at the agency after the take-over")
	testwait.Until(t, generous, nothingPending, "every message recorded delivered")
	// The survivor's first attempt may wait for its own connection to the
	// agency, silenced by the cut, to be found dead (spec §8).
	t.Logf("SIGKILL of %s holding a %s lease (until %s after the kill): %s took over after %s, %d messages delivered after %s",
		victim.ID, lease, dying.ExpiresAt.Sub(killedAt).Round(10*time.Millisecond), survivor.ID,
		tookOver.Round(10*time.Millisecond), afterCut, time.Since(killedAt).Round(10*time.Millisecond))
	final, err := ministry.GetOutboxLease(ctx, agency.DID())
	if err != nil {
		t.Fatal(err)
	}
	if final.Token != took.Token || holding(t, n, final) != survivor {
		t.Errorf("after the take-over the agency's lease went from %+v to %+v; want it kept by %s", took, final, survivor.ID)
	}

	// In order, without a gap: the agency's replica of the log is the
	// host's, record by record (a record out of order is refused, and would
	// stay failed).
	want, err := ministry.ListRecords(ctx, conf, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := agency.Store().ListRecords(ctx, conf, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 4+beforeCut+afterCut || len(got) != len(want) {
		t.Fatalf("the ministry's log has %d records and the agency's %d, want %d", len(want), len(got), 4+beforeCut+afterCut)
	}
	for i := range want {
		if want[i].Seq != want[0].Seq+int64(i) || got[i].Seq != want[i].Seq || got[i].Hash != want[i].Hash {
			t.Fatalf("record %d at the agency: seq %d hash %s; at the ministry: seq %d hash %s", i, got[i].Seq, got[i].Hash, want[i].Seq, want[i].Hash)
		}
	}
	// Exactly once: every message to the agency was delivered, and the
	// agency's signed receipt says it received each for the first time (a
	// second copy is answered "duplicate").
	sent, err := ministry.ListOutbox(ctx, agency.DID(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) < 3+beforeCut+afterCut {
		t.Fatalf("%d messages to the agency, want at least %d", len(sent), 3+beforeCut+afterCut)
	}
	seen := map[string]bool{}
	for _, m := range sent {
		if seen[m.MessageID] {
			t.Errorf("message %s queued to the agency twice", m.MessageID)
		}
		seen[m.MessageID] = true
		if m.State != store.OutboxDelivered {
			t.Errorf("message %s to the agency is %s (%s), want delivered", m.MessageID, m.State, m.LastError)
			continue
		}
		if rc := receiptOf(t, m.Receipt); rc.Message != m.MessageID || rc.Status != "accepted" {
			t.Errorf("receipt of message %s: %+v, want it accepted once", m.MessageID, rc)
		}
	}
}

// openStore opens the node's PostgreSQL store, as the administration
// commands do, to read what the replicas recorded.
func openStore(t *testing.T, n *Node) store.Store {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), n.DatabaseURL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// holding returns the replica that holds lease l, by the process id in its
// holder's name (host/pid/random).
func holding(t *testing.T, n *Node, l store.OutboxLease) *Replica {
	t.Helper()
	parts := strings.Split(l.Holder, "/")
	if len(parts) != 3 {
		t.Fatalf("lease holder %q is not host/pid/random", l.Holder)
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil {
		t.Fatalf("lease holder %q: %v", l.Holder, err)
	}
	for _, r := range n.Replicas {
		if r.Pid() == pid {
			return r
		}
	}
	t.Fatalf("lease holder %q is none of the replicas", l.Holder)
	return nil
}

// federationRequests reads, from each replica's metrics, how many
// federation requests it answered with 200; the agency is the node's only
// peer, so these are the agency's.
func federationRequests(t *testing.T, n *Node) []int {
	t.Helper()
	const series = `entente_http_requests_total{code="200",route="/federation/v1/"} `
	out := make([]int, len(n.Replicas))
	for i, r := range n.Replicas {
		resp, err := n.HTTPClient().Get(r.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), series); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s: %s= %q", r.ID, series, v)
				}
				out[i] = int(f)
			}
		}
		resp.Body.Close()
	}
	return out
}

func receiptOf(t *testing.T, body []byte) federation.ReceiptContent {
	t.Helper()
	env, err := federation.DecodeEnvelope(body)
	if err != nil {
		t.Fatalf("receipt: %v", err)
	}
	pb, err := env.PayloadBytes()
	if err != nil {
		t.Fatal(err)
	}
	p, err := federation.DecodePayload(pb)
	if err != nil {
		t.Fatal(err)
	}
	var rc federation.ReceiptContent
	if err := json.Unmarshal(p.Content, &rc); err != nil {
		t.Fatal(err)
	}
	return rc
}
