package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/cluster"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/media"
)

// trunkPath is where a replica that received a peer's trunk offer hands it
// to the replica running the conference (docs/replicas.md, "Trunks").
const trunkPath = "/internal/v1/trunks"

// replicaTrunk is the body of a trunk offer sent to the replica running a
// conference: a member node's offer, forwarded, with Peer its DID; or,
// with Peer empty, the offer of the sending replica itself, joining a
// conference that spans replicas (spantrunk.go).
type replicaTrunk struct {
	Conference string `json:"conference"`
	Peer       string `json:"peer"`
	SDP        string `json:"sdp"`
	Relay      bool   `json:"relay"`
}

// answerTrunk answers a member node's verified trunk offer where the
// conference's media runs: on this replica, or on the one placement names,
// to which the offer is forwarded over the signed replica link.
func (n *Node) answerTrunk(ctx context.Context, conference, peer string, offer federation.TrunkOffer) (string, error) {
	if l := n.replicas; l != nil {
		owner, err := l.c.Place(ctx, conference)
		if err != nil {
			n.log.Warn("conference not placed; answering its trunk here", "conference", conference, "err", err)
		} else if owner.ID != l.c.Self().ID {
			t := replicaTrunk{Conference: conference, Peer: peer, SDP: offer.SDP, Relay: offer.Relay}
			answer, err := n.forwardTrunk(ctx, owner, t)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				return answer, err
			}
			// The owner's process is gone: place the conference again
			// and answer where it lands now.
			l.c.Suspect(owner.ID)
			if owner, err = l.c.Place(ctx, conference); err != nil {
				return "", err
			}
			if owner.ID != l.c.Self().ID {
				return n.forwardTrunk(ctx, owner, t)
			}
		}
	}
	answer, err := n.sfu.AcceptTrunk(ctx, conference, peer, offer.SDP, offer.Relay)
	if errors.Is(err, media.ErrBadTrunkOffer) {
		return "", httpapi.BadRequest("%v", err)
	}
	return answer, err
}

func (n *Node) forwardTrunk(ctx context.Context, owner cluster.Replica, t replicaTrunk) (string, error) {
	body, _ := json.Marshal(t)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(owner.InternalURL, "/")+trunkPath, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("trunk to replica %s: %w", owner.ID, err)
	}
	req.Header.Set("Content-Type", "application/json")
	n.replicas.c.SignRequest(req)
	resp, err := (&http.Client{Transport: n.replicas.transport}).Do(req)
	if err != nil {
		return "", &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
			Message: fmt.Sprintf("the replica running conference %s cannot be reached", t.Conference), Err: err}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		// The owner's refusal is the peer's answer, as if it came from here.
		var eb httpapi.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" && resp.StatusCode < 500 {
			return "", &httpapi.Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return "", fmt.Errorf("trunk to replica %s: %s: %s", owner.ID, resp.Status, bytes.TrimSpace(data))
	}
	var a federation.TrunkAnswer
	if err := json.Unmarshal(data, &a); err != nil || a.SDP == "" {
		return "", fmt.Errorf("trunk to replica %s: unreadable answer", owner.ID)
	}
	n.log.Info("trunk offer forwarded to the conference's replica", "conference", t.Conference, "peer", t.Peer, "to", owner.ID)
	return a.SDP, nil
}

// serveReplicaTrunk answers a trunk offer another replica of this node
// forwarded: only a request bearing a valid link signature is heard, the
// federation signature having been checked by the replica that got it.
func (n *Node) serveReplicaTrunk(w http.ResponseWriter, r *http.Request) {
	if n.replicas == nil {
		httpapi.WriteError(w, httpapi.NotFound("this node runs as one process"))
		return
	}
	if err := n.replicas.c.Authenticate(r); err != nil {
		httpapi.WriteError(w, httpapi.Unauthorized("%v", err))
		return
	}
	var t replicaTrunk
	if !httpapi.ReadJSON(w, r, &t) {
		return
	}
	if t.Conference == "" || t.SDP == "" {
		httpapi.WriteError(w, httpapi.BadRequest("conference and sdp are required"))
		return
	}
	var answer string
	var err error
	if t.Peer == "" {
		answer, err = n.acceptReplicaTrunk(r, t)
	} else {
		answer, err = n.sfu.AcceptTrunk(r.Context(), t.Conference, t.Peer, t.SDP, t.Relay)
	}
	if errors.Is(err, media.ErrBadTrunkOffer) {
		err = httpapi.BadRequest("%v", err)
	}
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, federation.TrunkAnswer{SDP: answer})
}
