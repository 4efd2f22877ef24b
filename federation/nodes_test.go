package federation_test

import (
	"context"
	"testing"

	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// Fixtures shared by the tests that run real nodes.

// twoNodes starts the ministry (a) and the agency (b), trusting each other.
func twoNodes(t *testing.T) (f *nodetest.Federation, a, b *nodetest.Node) {
	t.Helper()
	f = nodetest.New(t)
	a, b = f.Start(t, "Ministry", nil), f.Start(t, "Agency", nil)
	nodetest.Trust(t, a, b)
	return f, a, b
}

// threeNodes starts the ministry (a), the agency (b) and the city (c), all
// trusting each other.
func threeNodes(t *testing.T) (f *nodetest.Federation, a, b, c *nodetest.Node) {
	t.Helper()
	f = nodetest.New(t)
	a, b, c = f.Start(t, "Ministry", nil), f.Start(t, "Agency", nil), f.Start(t, "City", nil)
	nodetest.Trust(t, a, b, c)
	return f, a, b, c
}

// invitedConference has by create a conference titled title on host and
// invite every node of members, for all its users.
func invitedConference(t testing.TB, host *nodetest.Node, by localuser.User, title string, members ...*nodetest.Node) store.Conference {
	t.Helper()
	ctx := context.Background()
	conf, err := host.Federation().CreateConference(ctx, by, title, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if _, err := host.Federation().Invite(ctx, by, conf.ID, m.DID(), nil); err != nil {
			t.Fatal(err)
		}
	}
	return conf
}
