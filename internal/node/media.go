package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/pion/webrtc/v4"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/media"
)

// newSFU makes the node's SFU; membership comes from federation.
func (n *Node) newSFU() (*media.SFU, error) {
	var ice []webrtc.ICEServer
	if stun := n.cfg.Media.STUNList(); len(stun) > 0 {
		ice = []webrtc.ICEServer{{URLs: stun}}
	}
	sfu, err := media.New(media.Options{
		Membership:      membership{n.fed},
		Logger:          n.log,
		UDPPort:         n.cfg.Media.UDPPort,
		PublicIPs:       n.cfg.Media.PublicIPList(),
		ICEServers:      ice,
		Registry:        n.registry,
		IncludeLoopback: n.cfg.Media.LoopbackCandidates,
	})
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	return sfu, nil
}

// membership answers the SFU's question from the conference's log, and maps
// federation's refusals onto the two the SFU acts on.
type membership struct{ fed *federation.Service }

func (m membership) MayParticipate(ctx context.Context, conference, user string) error {
	err := m.fed.MayParticipate(ctx, conference, user)
	var fe *federation.Error
	if errors.As(err, &fe) {
		switch fe.Status {
		case http.StatusGone:
			return fmt.Errorf("%w: %s", media.ErrConferenceEnded, fe.Message)
		case http.StatusForbidden, http.StatusNotFound:
			return fmt.Errorf("%w: %s", media.ErrNotParticipant, fe.Message)
		}
	}
	return err
}

// serveMedia opens a user's signalling WebSocket (spec/client-api.md §5).
func (n *Node) serveMedia(w http.ResponseWriter, r *http.Request) {
	u, err := n.accounts.Authenticate(r)
	if err != nil {
		federation.WriteError(w, err)
		return
	}
	n.sfu.ServeSignal(w, r, r.PathValue("id"), federation.UserRef(u.ID, n.did), u.DisplayName, n.cfg.Node.Name)
}
