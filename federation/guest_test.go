package federation_test

import (
	"context"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/nodetest"
)

// A Matrix user let in with an OpenID token takes part as a guest of the
// node's organisation, under their Matrix ID.
func TestMatrixGuestJoinsAsGuestOfTheOrganisation(t *testing.T) {
	f := nodetest.New(t)
	a := f.Start(t, "Ministry", nil)
	ctx := context.Background()
	alice, _ := nodetest.User(t, a, "alice", "Alice")
	conf, err := a.Federation().CreateConference(ctx, alice, "Open to Matrix", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := accounts.IssueMatrixGuest(ctx, a.Store(), "@mona:matrix.ministry.example", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	again, err := accounts.IssueMatrixGuest(ctx, a.Store(), "@mona:matrix.ministry.example", time.Now())
	if err != nil || again == tok {
		t.Fatalf("second sign-in: %q %v", again, err)
	}
	guest := clientFor(t, f, a, tok)
	var me map[string]any
	guest.must(200, "GET", "/me", nil, &me)
	if me["display_name"] != "@mona:matrix.ministry.example" || me["admin"] != false {
		t.Fatalf("me: %v", me)
	}
	guest.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil)
	var roster federation.Roster
	guest.must(200, "GET", "/conferences/"+conf.ID+"/participants", nil, &roster)
	if len(roster.Participants) != 1 || roster.Participants[0].DisplayName != "@mona:matrix.ministry.example" ||
		roster.Participants[0].Organisation != "Ministry (Matrix guest)" {
		t.Fatalf("roster %+v", roster.Participants)
	}
	if _, err := accounts.AddUser(ctx, a.Store(), "mx.0123456789abcdef", "Impostor", false, time.Now()); err == nil {
		t.Fatal("a local user took a Matrix guest's name")
	}
}
