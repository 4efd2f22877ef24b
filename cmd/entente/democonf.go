package main

import (
	"context"
	"fmt"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/node"
	"github.com/entente-org/entente/store"
)

// demoCall is the conference the demo prepares between its institutions.
type demoCall struct {
	conference string
	title      string
	users      []demoAccount // one per node, in node order
	// matrixRoom is the conference's Matrix room when the demo bridges it.
	matrixRoom string
	// matrixAlias is the address the room was published under (--matrix-alias).
	matrixAlias string
}

type demoAccount struct {
	user  federation.LocalUser
	token string
}

// demoTrust puts every node on every other node's trust list.
func demoTrust(ctx context.Context, nodes []*node.Node) error {
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

// demoConference creates a user on each node and a conference hosted by the
// first node, to which every other institution is invited and has accepted.
func demoConference(ctx context.Context, nodes []*node.Node) (demoCall, error) {
	call := demoCall{title: "Inter-ministry coordination"}
	for i, n := range nodes {
		id, name := demoUser(i)
		u, err := accounts.AddUser(ctx, n.Store(), id, name, true, time.Now())
		if err != nil {
			return call, err
		}
		tok, err := accounts.IssueToken(ctx, n.Store(), u.ID, 7*24*time.Hour, time.Now())
		if err != nil {
			return call, err
		}
		call.users = append(call.users, demoAccount{federation.LocalUser{ID: u.ID, DisplayName: u.DisplayName, Admin: u.Admin}, tok})
	}
	host := nodes[0].Federation()
	conf, err := host.CreateConference(ctx, call.users[0].user, call.title, nil)
	if err != nil {
		return call, err
	}
	call.conference = conf.ID
	for _, n := range nodes[1:] {
		if _, err := host.Invite(ctx, call.users[0].user, conf.ID, n.DID(), nil); err != nil {
			return call, err
		}
	}
	for i, n := range nodes[1:] {
		u := call.users[i+1].user
		err := waitFor(ctx, 20*time.Millisecond, 15*time.Second, fmt.Sprintf("%s to receive the invitation", n.Name()), func() (bool, error) {
			inv, err := n.Federation().Invitations(ctx, u)
			return len(inv) > 0, err
		})
		if err != nil {
			return call, err
		}
		if _, _, err := n.Federation().Answer(ctx, u, conf.ID, true); err != nil {
			return call, err
		}
	}
	err = waitFor(ctx, 20*time.Millisecond, 15*time.Second, "every institution's acceptance to reach the host", func() (bool, error) {
		v, err := host.ConferenceDetail(ctx, conf.ID)
		if err != nil {
			return false, err
		}
		for _, n := range v.Nodes {
			if n.State != "accepted" {
				return false, nil
			}
		}
		return len(v.Nodes) == len(nodes)-1, nil
	})
	return call, err
}

// waitFor checks cond every interval until it holds, fails, ctx ends or d
// passes.
func waitFor(ctx context.Context, interval, d time.Duration, what string, cond func() (bool, error)) error {
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
