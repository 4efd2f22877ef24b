package localfed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/node"
	"github.com/entente-org/entente/store"
)

// Trust puts every node on every other node's trust list.
func Trust(ctx context.Context, nodes []*node.Node) error {
	for _, n := range nodes {
		for _, peer := range nodes {
			if peer == n {
				continue
			}
			err := federation.TrustList{Store: n.Store()}.Add(ctx, store.Peer{
				DID: peer.DID(), Name: peer.Name(), MayInvite: true, MayRelayMedia: true, AddedAt: time.Now().UTC(),
			})
			if err != nil {
				return fmt.Errorf("%s trusting %s: %w", n.Name(), peer.Name(), err)
			}
		}
	}
	return nil
}

// Federate has every node resolve every other node's DID document over
// HTTPS, which proves their identities and TLS are in place.
func Federate(ctx context.Context, nodes []*node.Node) error {
	for _, n := range nodes {
		for _, peer := range nodes {
			if peer == n {
				continue
			}
			doc, err := n.Resolver().Resolve(ctx, peer.DID())
			if err != nil {
				return fmt.Errorf("%s could not resolve %s: %w", n.Name(), peer.DID(), err)
			}
			if _, err := doc.Key("#" + peer.Keys().CurrentID()); err != nil {
				return fmt.Errorf("%s resolved %s without its current key: %w", n.Name(), peer.DID(), err)
			}
		}
	}
	return nil
}

// AddUser makes a local user of n who is not an administrator, for a
// benchmark.
func AddUser(ctx context.Context, n *node.Node, id, name string) (localuser.User, error) {
	u, err := accounts.AddUser(ctx, n.Store(), id, name, false, time.Now())
	if err != nil {
		return localuser.User{}, fmt.Errorf("bench user %s on %s: %w", id, n.Name(), err)
	}
	return localuser.User{ID: u.ID, DisplayName: u.DisplayName}, nil
}

// PeerState reports whether n's copy of conference shows guest in state.
func PeerState(ctx context.Context, n *node.Node, conference, guest, state string) (bool, error) {
	cn, err := n.Store().GetConferenceNode(ctx, conference, guest)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil && cn.State == state, err
}

// WaitFor checks cond every interval until it holds, fails, ctx ends or d
// passes.
func WaitFor(ctx context.Context, interval, d time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", d, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
