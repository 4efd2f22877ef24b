package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/devcert"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/node"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/internal/testwait"
	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

// The ministry runs as two replicas, real `entente serve` processes sharing
// one PostgreSQL database and their keys in it, behind one address. The
// agency federates with it while its requests land on one replica and then
// the other; then the replica delivering to the agency is killed (SIGKILL)
// in the middle of the agency's queue. The other replica takes the agency
// over when the dead one's lease ends, and the agency receives every
// message once, in order.
func TestReplicaKilledMidOutbox(t *testing.T) {
	const (
		lease       = 3 * time.Second
		beforeCut   = 4  // messages delivered before the replica dies
		afterCut    = 12 // messages queued while it dies
		takeoverMax = 60 * time.Second
	)
	ctx := context.Background()
	f := nodetest.New(t)
	agency, agencyPath := f.StartBehind(t, "Agency", nil)
	bruno, _ := nodetest.User(t, agency, "bruno", "Bruno")

	// The replicas' shared address: a balancer that sends each new
	// connection to the replica the test routes it to.
	lb := newBalancer(t)
	dir := t.TempDir()
	certPEM, keyPEM, err := f.CA.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := devcert.WriteFiles(filepath.Join(dir, "tls"), certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	shared := []string{
		"ENTENTE_NODE_NAME=Ministry", "ENTENTE_NODE_PUBLIC_URL=https://" + lb.Addr(),
		"ENTENTE_DATABASE_URL=" + storetest.PostgresURL(t), "ENTENTE_KEYS_STORAGE=database",
		"ENTENTE_HTTP_TLS_CERT=" + certFile, "ENTENTE_HTTP_TLS_KEY=" + keyFile,
		"ENTENTE_FEDERATION_CA_FILE=" + f.CAFile, "ENTENTE_FEDERATION_ALLOW_PRIVATE_ADDRESSES=true",
		"ENTENTE_FEDERATION_DELIVERY_LEASE=" + lease.String(), "ENTENTE_LOG_FORMAT=text",
	}
	replicaEnv := func(i int) []string {
		return append(slices.Clone(shared),
			"ENTENTE_NODE_DATA_DIR="+filepath.Join(dir, fmt.Sprintf("replica-%d", i)),
			"ENTENTE_HTTP_LISTEN="+fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	}
	var replicas []*replicaProcess
	for i := range 2 {
		// One after the other: the first generates the keys the second loads.
		env := replicaEnv(i)
		replicas = append(replicas, &replicaProcess{cmd: startNodeProcess(t, env), addr: envValue(env, "ENTENTE_HTTP_LISTEN")})
		lb.add(replicas[i].addr)
	}

	// The ministry's administrator works on the shared database, as the
	// CLI does; the replicas deliver what it queues.
	admin := openAdminNode(t, append(slices.Clone(shared), "ENTENTE_NODE_DATA_DIR="+filepath.Join(dir, "admin")))
	ministry := admin.DID()
	if ministry != "did:web:127.0.0.1%3A"+lb.Port() {
		t.Fatalf("the ministry's DID is %s, want that of the shared address %s", ministry, lb.Addr())
	}
	if err := (federation.TrustList{Store: admin.Store()}).Add(ctx, store.Peer{DID: agency.DID(), Name: "Agency", MayInvite: true, AddedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := (federation.TrustList{Store: agency.Store()}).Add(ctx, store.Peer{DID: ministry, Name: "Ministry", MayInvite: true, AddedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	u, err := accounts.AddUser(ctx, admin.Store(), "alice", "Alice", false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice := localuser.User{ID: u.ID, DisplayName: u.DisplayName}
	conf, err := admin.Federation().CreateConference(ctx, alice, "Replicated", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Federation().Invite(ctx, alice, conf.ID, agency.DID(), nil); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, takeoverMax, func() bool {
		inv, _ := agency.Federation().Invitations(ctx, bruno)
		return len(inv) == 1 && inv[0].Conference == conf.ID
	}, "the invitation at the agency")

	// The agency's answer reaches the first replica, its join the second:
	// whichever replica a request lands on, it is applied to the one node.
	lb.route(0)
	if _, _, err := agency.Federation().Answer(ctx, bruno, conf.ID, true); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, takeoverMax, func() bool {
		n, err := admin.Store().GetConferenceNode(ctx, conf.ID, agency.DID())
		return err == nil && n.State == "accepted"
	}, "the agency's acceptance at the ministry")
	lb.route(1)
	if _, _, err := agency.Federation().Join(ctx, bruno, conf.ID); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, takeoverMax, func() bool {
		ps, _ := admin.Store().ListParticipants(ctx, conf.ID)
		return len(ps) == 1 && ps[0].User == "bruno@"+agency.DID()
	}, "Bruno's join at the ministry")
	if got := lb.connections(); got[0] == 0 || got[1] == 0 {
		t.Fatalf("connections per replica %v: the agency's requests did not reach both", got)
	}

	moderate := func(n int) {
		t.Helper()
		for i := range n {
			typ := federation.TypeLock
			if i%2 == 1 {
				typ = federation.TypeUnlock
			}
			if _, err := admin.Federation().Moderate(ctx, alice, conf.ID, typ, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	agencyHasAll := func() bool {
		want, err1 := admin.Store().GetConference(ctx, conf.ID)
		got, err2 := agency.Store().GetConference(ctx, conf.ID)
		return err1 == nil && err2 == nil && got.HeadSeq == want.HeadSeq
	}
	nothingPending := func() bool {
		n, err := admin.Store().CountOutbox(ctx, store.OutboxPending)
		return err == nil && n == 0
	}
	moderate(beforeCut)
	testwait.Until(t, takeoverMax, agencyHasAll, "the first %d moderation records at the agency", beforeCut)
	// Nothing in flight when the path is cut: every receipt is back.
	testwait.Until(t, takeoverMax, nothingPending, "the first %d moderation records recorded delivered", beforeCut)

	// The agency becomes unreachable; the rest of the queue waits. The
	// replica holding the agency's lease keeps renewing it while its
	// delivery hangs: that one is killed in the middle of the queue.
	agencyPath.Cut()
	cutAt := time.Now()
	moderate(afterCut)
	var dying store.OutboxLease
	testwait.Until(t, takeoverMax, func() bool {
		dying, err = admin.Store().GetOutboxLease(ctx, agency.DID())
		return err == nil && dying.ExpiresAt.After(cutAt.Add(lease))
	}, "a replica delivering to the agency under a renewed lease")
	victim, survivor := replicaHolding(t, replicas, dying)
	if err := replicas[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	replicas[victim].cmd.Wait()
	lb.route(survivor) // as a load balancer's health check would
	if pending, err := admin.Store().ListOutbox(ctx, agency.DID(), store.OutboxPending); err != nil || len(pending) != afterCut {
		t.Fatalf("when the replica died, %d messages to the agency were pending (%v), want %d", len(pending), err, afterCut)
	}
	agencyPath.Heal()

	testwait.Until(t, takeoverMax, func() bool {
		l, err := admin.Store().GetOutboxLease(ctx, agency.DID())
		return err == nil && l.Token > dying.Token
	}, "the agency's lease taken over")
	tookOver := time.Since(killedAt)
	testwait.Until(t, takeoverMax, agencyHasAll, "the whole log at the agency after the take-over")
	testwait.Until(t, takeoverMax, nothingPending, "every message recorded delivered")
	// The survivor's first attempt may wait for its own connection to the
	// agency, silenced by the cut, to be found dead (spec §8).
	t.Logf("SIGKILL of the replica holding a %s lease (until %s after the kill): taken over after %s, %d messages delivered after %s",
		lease, dying.ExpiresAt.Sub(killedAt).Round(10*time.Millisecond), tookOver.Round(10*time.Millisecond),
		afterCut, time.Since(killedAt).Round(10*time.Millisecond))
	took, err := admin.Store().GetOutboxLease(ctx, agency.DID())
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := replicaHolding(t, replicas, took); h != survivor || took.Token <= dying.Token {
		t.Errorf("after the take-over the agency's lease is %+v; want the surviving replica's, with a token above %d", took, dying.Token)
	}

	// In order: the agency's replica of the log is the host's, record by
	// record (a record out of order is refused, and would stay failed).
	want, err := admin.Store().ListRecords(ctx, conf.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := agency.Store().ListRecords(ctx, conf.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 4+beforeCut+afterCut || len(got) != len(want) {
		t.Fatalf("the ministry's log has %d records and the agency's %d, want %d", len(want), len(got), 4+beforeCut+afterCut)
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || got[i].Hash != want[i].Hash {
			t.Fatalf("record %d at the agency: seq %d hash %s; at the ministry: seq %d hash %s", i, got[i].Seq, got[i].Hash, want[i].Seq, want[i].Hash)
		}
	}
	// Exactly once: every message to the agency was delivered, and the
	// agency's signed receipt says it received each for the first time (a
	// second copy is answered "duplicate").
	sent, err := admin.Store().ListOutbox(ctx, agency.DID(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) < 3+beforeCut+afterCut {
		t.Fatalf("%d messages to the agency, want at least %d", len(sent), 3+beforeCut+afterCut)
	}
	for _, m := range sent {
		if m.State != store.OutboxDelivered {
			t.Errorf("message %s to the agency is %s (%s), want delivered", m.MessageID, m.State, m.LastError)
			continue
		}
		if rc := receiptOf(t, m.Receipt); rc.Message != m.MessageID || rc.Status != "accepted" {
			t.Errorf("receipt of message %s: %+v, want it accepted once", m.MessageID, rc)
		}
	}
}

// replicaProcess is one replica of the ministry, a real process.
type replicaProcess struct {
	cmd  *exec.Cmd
	addr string
}

// replicaHolding returns which replica holds lease l, by the process id in
// its holder name, and the other one.
func replicaHolding(t *testing.T, replicas []*replicaProcess, l store.OutboxLease) (holder, other int) {
	t.Helper()
	parts := strings.Split(l.Holder, "/")
	if len(parts) != 3 {
		t.Fatalf("lease holder %q is not host/pid/random", l.Holder)
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil {
		t.Fatalf("lease holder %q: %v", l.Holder, err)
	}
	for i, r := range replicas {
		if r.cmd.Process.Pid == pid {
			return i, 1 - i
		}
	}
	t.Fatalf("lease holder %q is none of the replicas", l.Holder)
	return 0, 0
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

func envValue(env []string, key string) string {
	for _, kv := range slices.Backward(env) {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// openAdminNode opens the node env configures without serving it, as the
// administration commands do.
func openAdminNode(t *testing.T, env []string) *node.Node {
	t.Helper()
	cfg, err := config.Load("", env)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(context.Background(), cfg, node.Options{Logger: slog.New(slog.DiscardHandler), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return n
}

// balancer is a TCP load balancer in front of the replicas: each connection
// it accepts goes to the replica it is routed to at the time.
type balancer struct {
	l net.Listener

	mu       sync.Mutex
	backends []string
	current  int
	counts   []int
	open     map[net.Conn]struct{}
	wg       sync.WaitGroup
}

func newBalancer(t *testing.T) *balancer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{l: l, open: make(map[net.Conn]struct{})}
	b.wg.Go(b.accept)
	t.Cleanup(b.close)
	return b
}

func (b *balancer) Addr() string { return b.l.Addr().String() }

func (b *balancer) Port() string {
	_, port, _ := net.SplitHostPort(b.Addr())
	return port
}

func (b *balancer) add(backend string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = append(b.backends, backend)
	b.counts = append(b.counts, 0)
}

// route sends new connections to backend i, and closes the open ones, so
// that clients reconnect through the new route.
func (b *balancer) route(i int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.current = i
	for c := range b.open {
		c.Close()
	}
}

// connections counts the connections forwarded to each backend.
func (b *balancer) connections() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.counts)
}

func (b *balancer) accept() {
	for {
		c, err := b.l.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		if len(b.backends) == 0 {
			b.mu.Unlock()
			c.Close()
			continue
		}
		target := b.backends[b.current]
		b.counts[b.current]++
		b.open[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Go(func() { b.forward(c, target) })
	}
}

func (b *balancer) forward(c net.Conn, target string) {
	defer func() {
		b.mu.Lock()
		delete(b.open, c)
		b.mu.Unlock()
		c.Close()
	}()
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); up.Close(); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.Close(); done <- struct{}{} }()
	<-done
	<-done
}

func (b *balancer) close() {
	b.l.Close()
	b.mu.Lock()
	for c := range b.open {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}
