package federation_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
)

// TestGuestJoinOnlyFromHost: a node other than the host may not join a
// guest, nor take the guests' reserved localparts or label, and the host's
// store is left as it was (spec §6.1).
func TestGuestJoinOnlyFromHost(t *testing.T) {
	fx := newSecFixture(t)
	a := fx.attacker
	if got := fx.deliver(t, a, fx.inbox, fx.accept(t)); got.status != http.StatusOK || got.receipt.Status != "accepted" {
		t.Fatalf("accept: %d %+v %s", got.status, got.receipt, got.raw)
	}
	join := func(typ, local, name string, guest bool) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			c := fmt.Sprintf(`{"user":%q,"display_name":%q,"organisation":"Agency"`, local+"@"+a.DID(), name)
			if guest {
				c += `,"guest":true`
			}
			p := fx.payload(a, typ, c+"}")
			p.Sender = local + "@" + a.DID()
			return secSigned(t, a, http.MethodPost, fx.inbox, fx.envelope(t, a, p), time.Now())
		}
	}
	for _, c := range []struct {
		what  string
		build func(t *testing.T) *http.Request
		want  secRefusal
	}{
		{"a member's guest join", join(federation.TypeJoin, "guest.eve", "Eve (guest, unverified)", true),
			secRefusal{403, "forbidden", "a guest joins only through the host " + fx.target.DID()}},
		{"a member's guest knock", join(federation.TypeKnock, "guest.eve", "Eve (guest, unverified)", true),
			secRefusal{403, "forbidden", "a guest joins only through the host"}},
		{"a member's user under the guests' prefix", join(federation.TypeJoin, "guest.eve", "Eve", false),
			secRefusal{403, "forbidden", `localparts starting with "guest." are kept for the host's guests`}},
		{"a member's user under the guests' label", join(federation.TypeJoin, "eve", "Eve (guest, unverified)", false),
			secRefusal{400, "bad_request", `display_name ending in "(guest, unverified)" is kept for guests`}},
	} {
		fx.attack(t, c.what, c.want, c.build)
	}
}

// TestGuestAlwaysKnocks: the host's guest of a link knocks even with the
// lobby off, under the label, as a guest of the host's organisation; a
// direct join of a guest and a guest without the label are refused.
func TestGuestAlwaysKnocks(t *testing.T) {
	f := nodetest.New(t)
	a := f.Start(t, "Ministry", nil)
	ctx := context.Background()
	alice, _ := nodetest.User(t, a, "alice", "Alice")
	conf, err := a.Federation().Create(ctx, alice, federation.CreateContent{Title: "Open day"})
	if err != nil {
		t.Fatal(err)
	}
	zoe := localuser.User{ID: "guest.0123456789abcdef", DisplayName: "Zoé", GuestOf: conf.ID}
	other, err := a.Federation().Create(ctx, alice, federation.CreateContent{Title: "Budget"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Federation().Join(ctx, zoe, other.ID); err == nil || err.Error() != "forbidden: a guest may join only conference "+conf.ID {
		t.Fatalf("a guest's join of another conference: %v", err)
	}
	if _, _, err := a.Federation().Join(ctx, zoe, conf.ID); err != nil {
		t.Fatal(err)
	}
	roster, err := a.Federation().LocalRoster(ctx, conf.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := federation.RosterMember{User: federation.UserRef(zoe.ID, a.DID()), DisplayName: "Zoé (guest, unverified)",
		Organisation: "Ministry", Guest: true, Node: a.DID()}
	if len(roster.Participants) != 0 || len(roster.Lobby) != 1 || !sameMember(roster.Lobby[0], want) {
		t.Fatalf("roster after the guest's join: participants %+v, lobby %+v; want only %+v waiting",
			roster.Participants, roster.Lobby, want)
	}
	if ok, err := a.Federation().Moderates(ctx, localuser.User{ID: "alice", GuestOf: conf.ID}, conf.ID); ok || err != nil {
		t.Fatalf("a guest moderates: %v, %v", ok, err)
	}
}
