package node

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/entente-org/entente/internal/cluster"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/store/storetest"
)

// startReplica starts a node as the one replica of a cluster on the test
// NATS server, in a PostgreSQL schema of its own.
func startReplica(t *testing.T, f *testFederation) *Node {
	t.Helper()
	nats := os.Getenv("ENTENTE_TEST_NATS_URL")
	if nats == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ENTENTE_TEST_NATS_URL is not set: replica tests need NATS with JetStream")
		}
		t.Skip("ENTENTE_TEST_NATS_URL is not set")
	}
	db := storetest.PostgresURL(t)
	n := f.start(t, "ministry", func(c *config.Config) {
		c.Database.URL = db
		c.Keys.Storage = "database"
		c.Cluster.NATSURL = nats
		c.Cluster.InternalURL = c.Node.PublicURL
		c.Cluster.ReplicaID = "only"
	})
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	return n
}

// A replica is ready until it drains; it answers requests claiming to come
// from another replica only with a valid link signature.
func TestReplicaReadinessAndLinkRefusals(t *testing.T) {
	f := newFederation(t)
	n := startReplica(t, f)
	c := f.client()
	ready := n.PublicURL() + "/readyz"
	if a := call(t, c, "GET", ready, ""); a.code != 200 || a.body["status"] != "ready" {
		t.Fatalf("readyz = %d %v", a.code, a.body)
	}

	// A forged trunk offer between replicas: unsigned, then signed with
	// another node's key.
	post := func(sign func(*http.Request)) int {
		req, _ := http.NewRequest("POST", n.PublicURL()+trunkPath, strings.NewReader(`{"conference":"c","peer":"did:web:x","sdp":"v=0"}`))
		req.Header.Set("Content-Type", "application/json")
		if sign != nil {
			sign(req)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(nil); got != http.StatusUnauthorized {
		t.Fatalf("unsigned replica trunk: %d, want 401", got)
	}
	other, err := cluster.Open(context.Background(), cluster.Options{
		NATSURL: os.Getenv("ENTENTE_TEST_NATS_URL"), ReplicaID: "stranger", NodeKey: "stranger" + cluster.NodeKeyFor(n.PublicURL()),
		Secret: []byte(strings.Repeat("k", 32)),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got := post(other.SignRequest); got != http.StatusUnauthorized {
		t.Fatalf("replica trunk signed with another key: %d, want 401", got)
	}
	// Signed by this node's own link, the offer reaches the SFU, which
	// refuses this SDP as a bad offer.
	if got := post(n.Cluster().SignRequest); got != http.StatusBadRequest {
		t.Fatalf("replica trunk signed by the node's link: %d, want 400 from the SFU", got)
	}

	n.Cluster().Drain(context.Background())
	if a := call(t, c, "GET", ready, ""); a.code != 503 || a.body["reason"] != "replica draining" || a.body["replica"] != "only" {
		t.Fatalf("readyz while draining = %d %v", a.code, a.body)
	}
}
