package localfed

import (
	"context"
	"fmt"
	"time"

	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/node"
)

// Call is a conference hosted by the first node of a local federation, to
// which every other node was invited and has accepted.
type Call struct {
	Conference string
	Title      string
	Users      []Account // one per node, in node order
}

// Account is a user of one node with an API token.
type Account struct {
	User  localuser.User
	Token string
}

// Conference creates on each node the user userOf names, an administrator
// with an API token, and a conference titled title hosted by the first node,
// to which every other node is invited and has accepted.
func Conference(ctx context.Context, nodes []*node.Node, title string, userOf func(i int) (id, name string)) (Call, error) {
	call := Call{Title: title}
	for i, n := range nodes {
		id, name := userOf(i)
		u, err := accounts.AddUser(ctx, n.Store(), id, name, true, time.Now())
		if err != nil {
			return call, err
		}
		tok, err := accounts.IssueToken(ctx, n.Store(), u.ID, 7*24*time.Hour, time.Now())
		if err != nil {
			return call, err
		}
		call.Users = append(call.Users, Account{localuser.User{ID: u.ID, DisplayName: u.DisplayName, Admin: u.Admin}, tok})
	}
	host := nodes[0].Federation()
	conf, err := host.CreateConference(ctx, call.Users[0].User, call.Title, nil)
	if err != nil {
		return call, err
	}
	call.Conference = conf.ID
	for _, n := range nodes[1:] {
		if _, err := host.Invite(ctx, call.Users[0].User, conf.ID, n.DID(), nil); err != nil {
			return call, err
		}
	}
	for i, n := range nodes[1:] {
		u := call.Users[i+1].User
		err := WaitFor(ctx, 20*time.Millisecond, 15*time.Second, fmt.Sprintf("%s to receive the invitation", n.Name()), func() (bool, error) {
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
	err = WaitFor(ctx, 20*time.Millisecond, 15*time.Second, "every institution's acceptance to reach the host", func() (bool, error) {
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
