package node

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/entente-org/entente/internal/cluster"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/media"
)

// A conference spanning replicas (docs/replicas.md, "Spanning"): the
// replica that owns it is, to the node's other replicas, the conference's
// host; they reach it by a trunk offered on the internal trunk route
// (replicatrunk.go), inside the node's trust boundary: signed with the
// replica link secret, not with the node's federation key. Only the owner
// holds the conference's trunks to other organisations.

// spanCascade is the SFU's Cascade on a replica: for a conference owned by
// another replica, that replica is the host; otherwise the conference's
// host is as federation says (this node, or another organisation). It also
// reports the replica's participants per conference to the span record.
type spanCascade struct {
	n   *Node
	fed cascade
	cl  *cluster.Cluster
	log *slog.Logger

	mu      sync.Mutex
	counts  map[string]int
	pending map[string]bool
	kick    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

// mediaCascade is the SFU's Cascade: federation's for a node of one
// process, spanCascade for a replica.
func (n *Node) mediaCascade() media.Cascade {
	l := n.replicas
	if l == nil {
		return cascade{n}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &spanCascade{n: n, fed: cascade{n}, cl: l.c, log: n.log,
		counts: map[string]int{}, pending: map[string]bool{}, kick: make(chan struct{}, 1),
		cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.runCounts(ctx)
	}()
	l.span = c
	return c
}

// stop ends the writing of counts.
func (c *spanCascade) stop() {
	c.cancel()
	<-c.done
}

// placeParticipant is the replica that is to serve a new participant's
// media WebSocket for conference: the owner while it has room, else the
// replicas the conference spans (cluster.PlaceParticipant).
func (n *Node) placeParticipant(ctx context.Context, conference string) (cluster.Replica, error) {
	return n.replicas.c.PlaceParticipant(ctx, conference)
}

// ownerElsewhere returns the replica owning conference when it is not this
// one. It places the conference when its owner died: a replica whose trunk
// to a dead owner closed must find the same new owner as the clients that
// reconnect (Place is atomic), or the conference would split in two.
func (c *spanCascade) ownerElsewhere(ctx context.Context, conference string) (cluster.Replica, bool, error) {
	owner, err := c.cl.Place(ctx, conference)
	if err != nil || owner.ID == c.cl.Self().ID {
		return cluster.Replica{}, false, err
	}
	return owner, true, nil
}

func (c *spanCascade) Host(ctx context.Context, conference string) (string, error) {
	owner, elsewhere, err := c.ownerElsewhere(ctx, conference)
	if err != nil {
		return "", err
	}
	if elsewhere {
		return media.ReplicaPeer(owner.ID), nil
	}
	return c.fed.Host(ctx, conference)
}

func (c *spanCascade) Offer(ctx context.Context, conference, sdp string) (string, error) {
	owner, elsewhere, err := c.ownerElsewhere(ctx, conference)
	if err != nil {
		return "", err
	}
	if !elsewhere {
		return c.fed.Offer(ctx, conference, sdp)
	}
	return c.n.forwardTrunk(ctx, owner, replicaTrunk{Conference: conference, SDP: sdp})
}

// MayRelay: the owner replica is not another organisation; between
// replicas every track crosses that the users could receive on the owner.
func (c *spanCascade) MayRelay(ctx context.Context, conference string) (bool, error) {
	_, elsewhere, err := c.ownerElsewhere(ctx, conference)
	if err != nil {
		return false, err
	}
	if elsewhere {
		return true, nil
	}
	return c.fed.MayRelay(ctx, conference)
}

// LocalParticipants implements media.LocalCounter: the latest count per
// conference is written to the span record by runCounts, in the
// background, so the SFU never waits for NATS.
func (c *spanCascade) LocalParticipants(conference string, clients int) {
	c.mu.Lock()
	c.counts[conference], c.pending[conference] = clients, true
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// runCounts writes the pending counts until ctx ends.
func (c *spanCascade) runCounts(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		c.mu.Lock()
		batch := map[string]int{}
		for conf := range c.pending {
			batch[conf] = c.counts[conf]
			if c.counts[conf] == 0 {
				delete(c.counts, conf)
			}
		}
		c.pending = map[string]bool{}
		c.mu.Unlock()
		for conf, n := range batch {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := c.cl.SetConferenceLoad(wctx, conf, n); err != nil && ctx.Err() == nil {
				c.log.Warn("conference load not recorded", "conference", conf, "participants", n, "err", err)
			}
			cancel()
		}
	}
}

// spannedHere reports whether conference spans this replica: another
// replica proxied a participant here after PlaceParticipant chose it.
func (n *Node) spannedHere(ctx context.Context, conference string) bool {
	in, err := n.replicas.c.InSpan(ctx, conference)
	if err != nil {
		n.log.Warn("span of the conference not read", "conference", conference, "err", err)
	}
	return in
}

// acceptReplicaTrunk answers the trunk offer of the replica that signed r,
// for a conference this replica runs.
func (n *Node) acceptReplicaTrunk(r *http.Request, t replicaTrunk) (string, error) {
	cl := n.replicas.c
	from := r.Header.Get(cluster.HeaderFrom)
	if from == cl.Self().ID {
		return "", httpapi.BadRequest("replica %s offered a trunk to itself", from)
	}
	owner, ok, err := cl.Owner(r.Context(), t.Conference)
	if err != nil {
		return "", err
	}
	if !ok || owner.ID != cl.Self().ID {
		return "", httpapi.Conflict("replica %s does not run conference %s", cl.Self().ID, t.Conference)
	}
	answer, err := n.sfu.AcceptReplicaTrunk(r.Context(), t.Conference, from, n.did, t.SDP)
	if errors.Is(err, media.ErrBadTrunkOffer) {
		return "", httpapi.BadRequest("%v", err)
	}
	return answer, err
}
