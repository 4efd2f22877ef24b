package federation_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

// stoppableClock tells the time until it is stopped, and then the time it
// was stopped at: the clock of a process that stalls.
type stoppableClock struct {
	mu      sync.Mutex
	stopped time.Time
}

func (c *stoppableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped.IsZero() {
		return c.stopped
	}
	return time.Now()
}

func (c *stoppableClock) Stop() {
	c.mu.Lock()
	c.stopped = time.Now()
	c.mu.Unlock()
}

// TestStalledReplicaLosesItsLease: a replica of the ministry stalls in the
// middle of a delivery to the agency (its clock stops, so its renewals date
// from the stall and the lease runs out). The ministry's other replica
// takes the agency over and delivers the message; the stalled one, when its
// renewal finds the lease taken, abandons its attempt and records nothing
// about it.
func TestStalledReplicaLosesItsLease(t *testing.T) {
	const (
		lease   = time.Second
		stalled = "stalled replica"
	)
	ctx := context.Background()
	f := nodetest.New(t)
	database := storetest.PostgresURL(t)
	ministry := f.Start(t, "Ministry", func(c *config.Config) {
		c.Database.URL = database
		c.Keys.Storage = "database"
		c.Federation.DeliveryLease = lease
	})
	agency, path := f.StartBehind(t, "Agency", nil)
	nodetest.Trust(t, ministry, agency)
	alice, _ := nodetest.User(t, ministry, "alice", "Alice")
	conf := invitedConference(t, ministry, alice, "Stalled", agency)
	nodetest.Eventually(t, wait, "the invitation delivered", func() bool {
		n, err := ministry.Store().CountOutbox(ctx, store.OutboxPending)
		return err == nil && n == 0
	})

	// The second replica runs in this process, with a clock the test stops.
	clock := &stoppableClock{}
	logs := &logRecords{}
	replica, err := federation.NewService(federation.Options{
		DID: ministry.DID(), PublicURL: ministry.PublicURL(), Name: "Ministry",
		Store: ministry.Store(), Keys: ministry.Keys(), Resolver: ministry.Resolver(), HTTP: f.Client(),
		Logger: slog.New(logs), Now: clock.Now, DeliveryHolder: stalled, DeliveryLease: lease,
	})
	if err != nil {
		t.Fatal(err)
	}
	// It holds the agency's lease (once the node's own has ended) when the
	// agency becomes unreachable and a message is queued.
	var taken store.OutboxLease
	nodetest.Eventually(t, wait, "the agency's lease for the second replica", func() bool {
		now := time.Now()
		taken, err = ministry.Store().TakeOutboxLease(ctx, agency.DID(), stalled, now, now.Add(lease))
		return err == nil
	})
	// The node's idle connection to the agency would be silenced by the
	// cut, and its next request wait for the dead-path check (spec §8).
	ministry.HTTPClient().CloseIdleConnections()
	path.Cut()
	if _, err := replica.Moderate(ctx, alice, conf.ID, federation.TypeLock, ""); err != nil {
		t.Fatal(err)
	}
	attempts := make(chan int, 1)
	go func() {
		n, err := replica.DeliverDue(ctx)
		if err != nil {
			t.Errorf("DeliverDue: %v", err)
		}
		attempts <- n
	}()
	// Its attempt hangs in the cut while it renews the lease; then it stalls.
	nodetest.Eventually(t, wait, "the second replica renewing the lease while it delivers", func() bool {
		l, err := ministry.Store().GetOutboxLease(ctx, agency.DID())
		return err == nil && l.Holder == stalled && l.Token == taken.Token && l.ExpiresAt.After(taken.ExpiresAt)
	})
	clock.Stop()
	// The path heals only once the other replica holds the lease: healed
	// earlier, the stalled attempt could reach the agency before its lease
	// ran out, and be a delivery like any other.
	nodetest.Eventually(t, wait, "the other replica taking the lease over", func() bool {
		l, err := ministry.Store().GetOutboxLease(ctx, agency.DID())
		return err == nil && l.Holder != stalled && l.Token > taken.Token
	})
	path.Heal()

	select {
	case n := <-attempts:
		if n != 1 {
			t.Fatalf("the stalled replica made %d attempts, want 1", n)
		}
	case <-time.After(wait):
		t.Fatal("the stalled replica's attempt did not end when its lease was taken over")
	}
	nodetest.Eventually(t, wait, "the lock delivered to the agency by the other replica", func() bool {
		c, err := agency.Store().GetConference(ctx, conf.ID)
		return err == nil && c.Locked
	})
	nodetest.Eventually(t, wait, "the lock recorded delivered", func() bool {
		n, err := ministry.Store().CountOutbox(ctx, store.OutboxPending)
		return err == nil && n == 0
	})
	l, err := ministry.Store().GetOutboxLease(ctx, agency.DID())
	if err != nil || l.Holder == stalled || l.Token <= taken.Token {
		t.Errorf("the agency's lease is %+v (%v); want the other replica's, with a token above %d", l, err, taken.Token)
	}
	if got := len(logs.with("outbox: delivery lease lost; another replica delivers to this peer")); got != 1 {
		t.Errorf("the stalled replica logged the lost lease %d times, want once", got)
	}
	if got := len(logs.with("delivery attempt abandoned: another replica took the delivery lease over")); got != 1 {
		t.Errorf("the stalled replica logged its abandoned attempt %d times, want once", got)
	}
	if got := replica.DeliveryStats(); got != (federation.DeliveryStats{}) {
		t.Errorf("the stalled replica counted outcomes %+v, want none", got)
	}
	msgs, err := ministry.Store().ListOutbox(ctx, agency.DID(), "")
	if err != nil {
		t.Fatal(err)
	}
	last := msgs[len(msgs)-1]
	if last.State != store.OutboxDelivered || last.Attempts != 0 || last.LastError != "" || receiptStatus(t, last.Receipt) != "accepted" {
		t.Errorf("the lock's message: state %s, %d attempts, last error %q; want delivered and accepted at the first attempt of the other replica",
			last.State, last.Attempts, last.LastError)
	}
}
