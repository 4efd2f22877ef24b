package media

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// replicaCascade is the cascade of a replica of did:web:a that does not own
// the conference: the owner replica is its host, reached in-process as a
// node reaches its owner replica over its internal URL.
type replicaCascade struct {
	id    string
	owner *cascadeNode
}

func (c *replicaCascade) Host(context.Context, string) (string, error) {
	return ReplicaPeer("owner"), nil
}

func (c *replicaCascade) Offer(ctx context.Context, conference, sdp string) (string, error) {
	return c.owner.sfu.AcceptReplicaTrunk(ctx, conference, c.id, c.owner.did, sdp)
}

func (c *replicaCascade) MayRelay(context.Context, string) (bool, error) { return true, nil }

// secondaryReplica starts the SFU of a replica of owner's node that joins
// owner's conferences through a replica trunk.
func secondaryReplica(t *testing.T, id string, owner *cascadeNode) *testNode {
	t.Helper()
	n := &testNode{membership: &fakeMembership{denied: map[string]error{}}, registry: prometheus.NewRegistry()}
	s, err := New(Options{Membership: n.membership, Registry: n.registry, IncludeLoopback: true,
		Cascade: &replicaCascade{id: id, owner: owner}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.trunks.grace = 200 * time.Millisecond
	n.sfu = s
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		s.ServeSignal(w, r, q.Get("conference"), q.Get("user"), "Name of "+q.Get("user"), "org "+owner.did)
	}))
	t.Cleanup(func() {
		n.srv.CloseClientConnections()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		n.srv.Close()
	})
	return n
}

// A conference hosted by another organisation, h, spans two replicas of
// did:web:a. The owner replica has no client of its own: the replica trunk
// alone makes it open the trunk to h. Every participant receives every
// other's media byte for byte, and a track crosses each link once.
func TestReplicaTrunkThroughOwnerToHost(t *testing.T) {
	f := newFabric()
	h, owner := f.node(t, "did:web:h", nil), f.node(t, "did:web:a", nil)
	f.hosts("conf-span", h)
	second := secondaryReplica(t, "r2", owner)

	hal := connect(t, h.testNode, "conf-span", "hal@did:web:h", clientOptions{autoSubscribe: true})
	rob := connect(t, second, "conf-span", "rob@did:web:a", clientOptions{autoSubscribe: true})
	rae := connect(t, second, "conf-span", "rae@did:web:a", clientOptions{autoSubscribe: true})

	fromHal := &testTrack{tag: 'h', kind: "audio", source: "microphone"}
	fromRob := &testTrack{tag: 'r', kind: "audio", source: "microphone"}
	fromRae := &testTrack{tag: 'e', kind: "video", source: "camera"}
	hal.publish(fromHal)
	rob.publish(fromRob)
	rae.publish(fromRae)

	checkExact(t, fromRob, hal.waitMedia(hal.waitTrackAdded(fromRob, rob.user), 30, 20*time.Second))
	checkExact(t, fromRae, hal.waitMedia(hal.waitTrackAdded(fromRae, rae.user), 30, 20*time.Second))
	halOnRob := rob.waitTrackAdded(fromHal, hal.user)
	checkExact(t, fromHal, rob.waitMedia(halOnRob, 30, 20*time.Second))
	checkExact(t, fromHal, rae.waitMedia(rae.waitTrackAdded(fromHal, hal.user), 30, 20*time.Second))
	checkExact(t, fromRae, rob.waitMedia(rob.waitTrackAdded(fromRae, rae.user), 30, 20*time.Second))
	checkExact(t, fromRob, rae.waitMedia(rae.waitTrackAdded(fromRob, rob.user), 30, 20*time.Second))

	if st := owner.sfu.TrunkStats(); st.Trunks != 2 {
		t.Fatalf("owner replica trunks = %d, want 2 (to the host, from the replica)", st.Trunks)
	}
	if st := second.sfu.TrunkStats(); st.Trunks != 1 {
		t.Fatalf("secondary replica trunks = %d, want 1 (to the owner)", st.Trunks)
	}
	// Hal's track crosses h → owner and owner → replica once each, for two
	// subscribers on the replica.
	toHost := trunkOf(t, owner, "conf-span", "did:web:h")
	toReplica := trunkOf(t, owner, "conf-span", ReplicaPeer("r2"))
	if !toReplica.replica || toHost.replica {
		t.Fatalf("replica flags: to host %v, to replica %v", toHost.replica, toReplica.replica)
	}
	crossed0, sent0 := toReplica.sentOf(halOnRob)[0], sentTotal(fromHal)
	published(t, fromHal, 100)
	crossed, sent := toReplica.sentOf(halOnRob)[0]-crossed0, sentTotal(fromHal)-sent0
	if r := float64(crossed) / float64(sent); r < 0.8 || r > 1.05 {
		t.Fatalf("%d packets of hal's track crossed to the replica for %d sent, want each once", crossed, sent)
	}
	// Rob's and Rae's media reaches h once through the owner: no more
	// packets crossed to h than they published.
	var toH uint64
	for _, c := range toHost.sentSnapshot() {
		toH += c
	}
	if pub := uint64(sentTotal(fromRob) + sentTotal(fromRae)); toH == 0 || toH > pub {
		t.Fatalf("%d packets crossed from the owner to the host for %d published on the replica, want at most once each", toH, pub)
	}
}

// sentSnapshot is how many packets of each track crossed t.
func (t *trunk) sentSnapshot() map[string]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]uint64{}
	for id, c := range t.sent {
		for i := range c.packets {
			out[id] += c.packets[i].Load()
		}
	}
	return out
}

// A conference hosted by did:web:a with a member organisation that forbids
// relaying: its media still reaches the node's users on the other replica
// (the same node), while the member's own participants are shown to the
// replica as they are on the owner.
func TestReplicaTrunkIgnoresRelayBetweenReplicas(t *testing.T) {
	f := newFabric()
	owner, b := f.node(t, "did:web:a", nil), f.node(t, "did:web:b", nil)
	f.hosts("conf-own", owner)
	f.setRelay("did:web:b", false)
	second := secondaryReplica(t, "r2", owner)

	bob := connect(t, b.testNode, "conf-own", "bob@did:web:b", clientOptions{autoSubscribe: true})
	ann := connect(t, owner.testNode, "conf-own", "ann@did:web:a", clientOptions{autoSubscribe: true})
	rob := connect(t, second, "conf-own", "rob@did:web:a", clientOptions{autoSubscribe: true})
	fromBob := &testTrack{tag: 'b', kind: "audio", source: "microphone"}
	fromRob := &testTrack{tag: 'r', kind: "video", source: "camera"}
	bob.publish(fromBob)
	rob.publish(fromRob)
	checkExact(t, fromBob, rob.waitMedia(rob.waitTrackAdded(fromBob, bob.user), 30, 20*time.Second))
	checkExact(t, fromRob, ann.waitMedia(ann.waitTrackAdded(fromRob, rob.user), 30, 20*time.Second))
	checkExact(t, fromRob, bob.waitMedia(bob.waitTrackAdded(fromRob, rob.user), 30, 20*time.Second))
	joined, _ := rob.awaitMsg(0, "bob's participant_joined", 10*time.Second, func(m map[string]any) bool {
		return m["type"] == "participant_joined" && m["user"] == bob.user
	})
	if joined["media_withheld"] == true {
		t.Fatalf("bob is marked withheld on the node's own replica: %v", joined)
	}
}

// A replica may announce only the node's users, and a replica name is never
// accepted as an organisation's trunk peer.
func TestReplicaTrunkRefusals(t *testing.T) {
	f := newFabric()
	owner := f.node(t, "did:web:a", nil)
	for _, peer := range []string{ReplicaPeer("r2"), "replica:"} {
		_, err := owner.sfu.AcceptTrunk(context.Background(), "c", peer, "v=0", true)
		if peer == "replica:" {
			// Not a replica name: an ordinary (malformed) offer.
			if !errors.Is(err, ErrBadTrunkOffer) {
				t.Fatalf("AcceptTrunk(%q) = %v, want ErrBadTrunkOffer", peer, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrBadTrunkOffer) || err.Error() != `media: trunk peer "replica:r2": not an acceptable trunk offer` {
			t.Fatalf("AcceptTrunk(%q) = %v, want the replica name refused", peer, err)
		}
	}
	if _, err := owner.sfu.AcceptReplicaTrunk(context.Background(), "c", "", "did:web:a", "v=0"); !errors.Is(err, ErrBadTrunkOffer) {
		t.Fatalf("AcceptReplicaTrunk without an id = %v, want ErrBadTrunkOffer", err)
	}
	if id, ok := ReplicaOf(ReplicaPeer("r7")); !ok || id != "r7" {
		t.Fatalf("ReplicaOf(ReplicaPeer(r7)) = %q, %v", id, ok)
	}
	if _, ok := ReplicaOf("did:web:replica:x"); ok {
		t.Fatalf("a DID was taken for a replica")
	}
}
