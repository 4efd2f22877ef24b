package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/entente-org/entente/internal/cluster"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/media"
)

// A conference spanning replicas (docs/replicas.md, "Spanning"): the
// replica that owns it is, to the node's other replicas, the conference's
// host; they reach it by a trunk offered over the internal route below,
// inside the node's trust boundary (signed with the replica link secret,
// not with the node's federation key). Only the owner holds the
// conference's trunks to other organisations: a peer organisation's trunk
// offer that lands on another replica is forwarded to the owner.

// ReplicaTrunkPath is the internal route on which a replica answers another
// replica's trunk offer for a conference it owns.
const ReplicaTrunkPath = "/internal/v1/trunk"

// replicaTrunkOffer is the body of POST ReplicaTrunkPath. Peer is empty for
// a trunk from the sending replica itself; set, it is a peer organisation's
// trunk offer that the sending replica verified (its federation signature,
// the trust list) and forwards to the owner, with the organisation's relay
// permission.
type replicaTrunkOffer struct {
	Conference string `json:"conference"`
	SDP        string `json:"sdp"`
	Peer       string `json:"peer,omitempty"`
	Relay      bool   `json:"relay,omitempty"`
}

type replicaTrunkAnswer struct {
	SDP string `json:"sdp"`
}

// spanCascade is the SFU's Cascade on a replica: for a conference owned by
// another replica, that replica is the host; otherwise the conference's
// host is as federation says (this node, or another organisation). It also
// reports the replica's participants per conference to the span record.
type spanCascade struct {
	fed    cascade
	cl     *cluster.Cluster
	client *http.Client
	log    *slog.Logger

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
	c := &spanCascade{fed: cascade{n}, cl: l.c, client: l.client(), log: n.log,
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

// client is the HTTP client of requests to the other replicas' internal
// URLs.
func (l *replicaLink) client() *http.Client {
	return &http.Client{Transport: l.transport, Timeout: 20 * time.Second}
}

// replicaRoutes mounts the internal routes of a replica.
func (n *Node) replicaRoutes() {
	if n.replicas == nil {
		return
	}
	n.Handle("POST "+ReplicaTrunkPath, n.serveReplicaTrunk(n.replicas.c))
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
	return offerToReplica(ctx, c.cl, c.client, owner, replicaTrunkOffer{Conference: conference, SDP: sdp})
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

// offerToReplica posts a trunk offer to the replica owning its conference,
// signed with the replica link secret, and returns the answer.
func offerToReplica(ctx context.Context, cl *cluster.Cluster, client *http.Client, owner cluster.Replica, offer replicaTrunkOffer) (string, error) {
	body, err := json.Marshal(offer)
	if err != nil {
		return "", err
	}
	url := strings.TrimRight(owner.InternalURL, "/") + ReplicaTrunkPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("replica %s: %w", owner.ID, err)
	}
	req.Header.Set("Content-Type", "application/json")
	cl.SignRequest(req)
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("trunk offer to replica %s: %w", owner.ID, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("trunk answer from replica %s: %w", owner.ID, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("trunk offer to replica %s: %s: %s", owner.ID, resp.Status, strings.TrimSpace(string(data)))
	}
	var ans replicaTrunkAnswer
	if err := json.Unmarshal(data, &ans); err != nil || ans.SDP == "" {
		return "", fmt.Errorf("trunk answer from replica %s: not an answer", owner.ID)
	}
	return ans.SDP, nil
}

// serveReplicaTrunk answers POST ReplicaTrunkPath: only another replica of
// this node, authenticated by the link signature, may offer; the
// conference must be owned here.
func (n *Node) serveReplicaTrunk(cl *cluster.Cluster) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := cl.Authenticate(r); err != nil {
			httpapi.WriteError(w, httpapi.Unauthorized("%v", err))
			return
		}
		var offer replicaTrunkOffer
		if !httpapi.ReadJSON(w, r, &offer) {
			return
		}
		if offer.Conference == "" || offer.SDP == "" {
			httpapi.WriteError(w, httpapi.BadRequest("a replica trunk offer needs conference and sdp"))
			return
		}
		from := r.Header.Get(cluster.HeaderFrom)
		if from == cl.Self().ID {
			httpapi.WriteError(w, httpapi.BadRequest("replica %s offered a trunk to itself", from))
			return
		}
		owner, ok, err := cl.Owner(r.Context(), offer.Conference)
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		if !ok || owner.ID != cl.Self().ID {
			httpapi.WriteError(w, httpapi.Conflict("replica %s does not own conference %s", cl.Self().ID, offer.Conference))
			return
		}
		var answer string
		if offer.Peer != "" {
			answer, err = n.sfu.AcceptTrunk(r.Context(), offer.Conference, offer.Peer, offer.SDP, offer.Relay)
		} else {
			answer, err = n.sfu.AcceptReplicaTrunk(r.Context(), offer.Conference, from, n.did, offer.SDP)
		}
		if errors.Is(err, media.ErrBadTrunkOffer) {
			httpapi.WriteError(w, httpapi.BadRequest("%v", err))
			return
		}
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, replicaTrunkAnswer{SDP: answer})
	}
}

// forwardFederationTrunk sends a peer organisation's verified trunk offer
// on to the replica that owns (or now takes) the conference, when that is
// not this one: only the owner holds the conference's trunks to other
// organisations, so a track crosses each link once. It reports whether it
// forwarded.
func forwardFederationTrunk(ctx context.Context, cl *cluster.Cluster, client *http.Client, conference, peer, sdp string, relay bool) (string, bool, error) {
	owner, err := cl.Place(ctx, conference)
	if err != nil {
		return "", false, err
	}
	if owner.ID == cl.Self().ID {
		return "", false, nil
	}
	answer, err := offerToReplica(ctx, cl, client, owner, replicaTrunkOffer{Conference: conference, SDP: sdp, Peer: peer, Relay: relay})
	return answer, true, err
}
