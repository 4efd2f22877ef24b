package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/media"
)

// newSFU makes the node's SFU; membership comes from federation.
func (n *Node) newSFU() (*media.SFU, error) {
	var ice []webrtc.ICEServer
	if stun := n.cfg.Media.STUNList(); len(stun) > 0 {
		ice = []webrtc.ICEServer{{URLs: stun}}
	}
	var turnFor media.UserICEServers
	if n.cfg.Media.TURNListen != "" {
		t, err := n.startTURN()
		if err != nil {
			return nil, err
		}
		n.turn = t
		turnFor = turnCredentials{n}
	}
	sfu, err := media.New(media.Options{
		UserICEServers:  turnFor,
		Membership:      membership{n.fed},
		Logger:          n.log,
		UDPPort:         n.cfg.Media.UDPPort,
		PublicIPs:       n.cfg.Media.PublicIPList(),
		ICEServers:      ice,
		Registry:        n.registry,
		IncludeLoopback: n.cfg.Media.LoopbackCandidates,
		Cascade:         n.mediaCascade(),
		Organisations:   n.fed,
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
	var fe *httpapi.Error
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

// cascade reaches the host of a conference hosted elsewhere through the
// signed trunk exchange (spec/federation.md §10).
type cascade struct{ n *Node }

func (c cascade) Host(ctx context.Context, conference string) (string, error) {
	conf, err := c.n.store.GetConference(ctx, conference)
	if err != nil {
		return "", fmt.Errorf("conference %s: %w", conference, err)
	}
	if conf.Host == c.n.did {
		return "", nil
	}
	return conf.Host, nil
}

func (c cascade) Offer(ctx context.Context, conference, sdp string) (string, error) {
	return c.n.fed.OfferTrunk(ctx, conference, sdp)
}

func (c cascade) MayRelay(ctx context.Context, conference string) (bool, error) {
	return c.n.fed.MayRelayMedia(ctx, conference)
}

// serveMedia opens a user's signalling WebSocket (spec/client-api.md §5).
func (n *Node) serveMedia(w http.ResponseWriter, r *http.Request) {
	u, err := n.accounts.Authenticate(r)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if n.routeToOwner(w, r, r.PathValue("id")) {
		return
	}
	n.sfu.ServeSignal(w, r, r.PathValue("id"), federation.UserRef(u.ID, n.did), u.ShownName(), n.cfg.Node.Name)
}

// turnCredentialTTL is how long a user's TURN credentials last: a working day.
const turnCredentialTTL = 12 * time.Hour

// startTURN starts the embedded TURN server. Its relays may only reach the
// SFU, at the addresses the SFU is reached at.
func (n *Node) startTURN() (*media.TURNServer, error) {
	peers, err := ownAddresses(n.cfg.Media.PublicIPList())
	if err != nil {
		return nil, fmt.Errorf("media.turn_listen: %w", err)
	}
	u, _ := url.Parse(n.cfg.Node.PublicURL)
	t, err := media.StartTURN(media.TURNOptions{
		Listen:  n.cfg.Media.TURNListen,
		RelayIP: n.cfg.Media.TURNRelay(),
		Realm:   u.Hostname(),
		Peers:   peers,
	})
	if err != nil {
		return nil, fmt.Errorf("media.turn_listen: %w", err)
	}
	n.log.Info("TURN server listening", "addr", t.Addr().String())
	return t, nil
}

// ownAddresses are this machine's interface addresses and its public IPs.
func ownAddresses(public []string) ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	for _, ip := range public {
		if a, err := netip.ParseAddr(ip); err == nil {
			out = append(out, a)
		}
	}
	return out, nil
}
