package federation_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

// TestReplicasApplyAMessageOnce: the agency runs as two replicas on one
// PostgreSQL database, behind one public address. The same signed message
// from the ministry reaches both replicas at once, as a retry after a lost
// answer may when a load balancer sends it to the other one: it is applied
// once, and the other copy is answered as a duplicate (spec §8).
func TestReplicasApplyAMessageOnce(t *testing.T) {
	const joins = 5
	ctx := context.Background()
	f := nodetest.New(t)
	database := storetest.PostgresURL(t)
	shared := func(c *config.Config) {
		c.Database.URL = database
		c.Keys.Storage = "database"
	}
	first, path := f.StartBehind(t, "Agency", shared)
	second := f.Start(t, "Agency replica", func(c *config.Config) {
		shared(c)
		c.Node.Name = "Agency"
		c.Node.PublicURL = first.PublicURL()
	})
	if second.DID() != first.DID() {
		t.Fatalf("the replicas are %s and %s, want one node", first.DID(), second.DID())
	}
	ministry := f.Start(t, "Ministry", nil)
	nodetest.Trust(t, first, ministry)

	alice, _ := nodetest.User(t, first, "alice", "Alice")
	var users []localuser.User
	for i := range joins {
		u, _ := nodetest.User(t, ministry, fmt.Sprintf("user%d", i), fmt.Sprintf("User %d", i))
		users = append(users, u)
	}
	conf := invitedConference(t, first, alice, "Two replicas", ministry)
	nodetest.Eventually(t, wait, "the invitation at the ministry", func() bool {
		inv, _ := ministry.Federation().Invitations(ctx, users[0])
		return len(inv) == 1
	})
	if _, _, err := ministry.Federation().Answer(ctx, users[0], conf.ID, true); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, wait, "the acceptance at the agency", func() bool {
		n, err := second.Store().GetConferenceNode(ctx, conf.ID, ministry.DID())
		return err == nil && n.State == "accepted"
	})

	// The agency's public address goes silent: the ministry's join events
	// wait in its outbox, from which this test takes them.
	path.Cut()
	for _, u := range users {
		if _, _, err := ministry.Federation().Join(ctx, u, conf.ID); err != nil {
			t.Fatal(err)
		}
	}
	queued, err := ministry.Store().ListOutbox(ctx, first.DID(), store.OutboxPending)
	if err != nil || len(queued) != joins {
		t.Fatalf("the ministry queued %d messages (%v), want %d joins", len(queued), err, joins)
	}
	replicas := []*nodetest.Node{first, second}
	for _, m := range queued {
		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			receipts [2]federation.ReceiptContent
		)
		for i, r := range replicas {
			wg.Go(func() {
				<-start
				receipts[i] = postToReplica(t, f, ministry, r, first.FederationEndpoint()+"/inbox", m.Body)
			})
		}
		close(start)
		wg.Wait()
		statuses := []string{receipts[0].Status, receipts[1].Status}
		if !(statuses[0] == "accepted" && statuses[1] == "duplicate" || statuses[0] == "duplicate" && statuses[1] == "accepted") {
			t.Fatalf("message %s sent to both replicas at once: receipts %+v, want one accepted and one duplicate", m.MessageID, receipts)
		}
		for _, rc := range receipts {
			if rc.Message != m.MessageID {
				t.Errorf("receipt for %s, want %s", rc.Message, m.MessageID)
			}
		}
	}

	// Each join is in the log once; the ministry's own delivery, once the
	// path is back, is a duplicate too.
	recs, err := second.Store().ListRecords(ctx, conf.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	joined := map[string]int{}
	for _, r := range recs {
		types = append(types, r.EventType)
		if r.EventType == federation.TypeJoin {
			joined[r.Sender]++
		}
	}
	want := []string{federation.TypeCreate, federation.TypeInvite, federation.TypeAccept}
	for range joins {
		want = append(want, federation.TypeJoin)
	}
	if !slices.Equal(types, want) {
		t.Errorf("the agency's log holds %v, want %v", types, want)
	}
	for _, u := range users {
		if n := joined[u.ID+"@"+ministry.DID()]; n != 1 {
			t.Errorf("%s joined %d times, want once", u.ID, n)
		}
	}
	path.Heal()
	nodetest.Eventually(t, wait, "the ministry's own deliveries", func() bool {
		n, err := ministry.Store().CountOutbox(ctx, store.OutboxPending)
		return err == nil && n == 0
	})
	delivered, err := ministry.Store().ListOutbox(ctx, first.DID(), store.OutboxDelivered)
	if err != nil {
		t.Fatal(err)
	}
	dups := 0
	for _, m := range delivered {
		if receiptStatus(t, m.Receipt) == "duplicate" {
			dups++
		}
	}
	if dups != joins {
		t.Errorf("%d of the ministry's deliveries were answered as duplicates, want the %d joins", dups, joins)
	}
	if after, err := second.Store().ListRecords(ctx, conf.ID, 0, 0); err != nil || len(after) != len(recs) {
		t.Errorf("after the ministry's deliveries the log has %d records (%v), want %d", len(after), err, len(recs))
	}
}

// postToReplica signs a POST of body to url, whose host is the node's
// public address, as from, and sends it to replica r itself, as a load
// balancer in front of the replicas would. It returns the receipt.
func postToReplica(t *testing.T, f *nodetest.Federation, from, r *nodetest.Node, url string, body []byte) federation.ReceiptContent {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	web := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.CA.Pool()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, r.Config.HTTP.Listen)
		},
	}}
	c := &federation.Client{HTTP: web, DID: from.DID(), Keys: from.Keys(), Now: time.Now}
	status, b, err := c.Do(context.Background(), http.MethodPost, url, body)
	if err != nil || status != http.StatusOK {
		t.Errorf("post to %s: %d %s %v", r.Config.HTTP.Listen, status, b, err)
		return federation.ReceiptContent{}
	}
	var rc federation.ReceiptContent
	env, err := federation.DecodeEnvelope(b)
	if err != nil {
		t.Errorf("receipt from %s: %v", r.Config.HTTP.Listen, err)
		return rc
	}
	pb, _ := env.PayloadBytes()
	p, err := federation.DecodePayload(pb)
	if err != nil || json.Unmarshal(p.Content, &rc) != nil {
		t.Errorf("receipt from %s: %s %v", r.Config.HTTP.Listen, pb, err)
	}
	return rc
}

func receiptStatus(t *testing.T, body []byte) string {
	t.Helper()
	env, err := federation.DecodeEnvelope(body)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := env.PayloadBytes()
	p, err := federation.DecodePayload(pb)
	if err != nil {
		t.Fatal(err)
	}
	var rc federation.ReceiptContent
	if err := json.Unmarshal(p.Content, &rc); err != nil {
		t.Fatal(err)
	}
	return rc.Status
}
