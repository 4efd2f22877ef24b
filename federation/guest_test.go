package federation_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
)

// A Matrix guest of the host knocks when the lobby is on, like a user of
// another organisation, and takes part under their homeserver's name, never
// the node's (spec §4.2, §6.1).
func TestMatrixGuestWaitsInTheLobbyUnderTheirHomeserver(t *testing.T) {
	f := nodetest.New(t)
	a := f.Start(t, "Ministry", nil)
	ctx := context.Background()
	alice, _ := nodetest.User(t, a, "alice", "Alice")
	conf, err := a.Federation().Create(ctx, alice, federation.CreateContent{Title: "Open to Matrix", Lobby: true})
	if err != nil {
		t.Fatal(err)
	}
	mona := localuser.User{ID: "mx.0123456789abcdef", DisplayName: "@mona:matrix.ministry.example", MatrixGuest: true}
	if _, _, err := a.Federation().Join(ctx, mona, conf.ID); err != nil {
		t.Fatal(err)
	}
	roster, err := a.Federation().LocalRoster(ctx, conf.ID)
	if err != nil {
		t.Fatal(err)
	}
	ref := federation.UserRef(mona.ID, a.DID())
	want := federation.RosterMember{User: ref, DisplayName: "@mona:matrix.ministry.example",
		Organisation: "matrix.ministry.example (Matrix)", Node: a.DID()}
	if len(roster.Participants) != 0 || len(roster.Lobby) != 1 || !sameMember(roster.Lobby[0], want) {
		t.Fatalf("roster after the guest's join: participants %+v, lobby %+v; want only %+v waiting",
			roster.Participants, roster.Lobby, want)
	}
	if _, err := a.Federation().Moderate(ctx, alice, conf.ID, federation.TypeAdmit, ref); err != nil {
		t.Fatal(err)
	}
	roster, err = a.Federation().LocalRoster(ctx, conf.ID)
	if err != nil || len(roster.Participants) != 1 || !sameMember(roster.Participants[0], want) || len(roster.Lobby) != 0 {
		t.Fatalf("roster after admission: %+v, %v", roster, err)
	}
	// The host's own users still come in directly.
	bob := localuser.User{ID: "bob", DisplayName: "Bob"}
	if _, _, err := a.Federation().Join(ctx, bob, conf.ID); err != nil {
		t.Fatal(err)
	}
	roster, _ = a.Federation().LocalRoster(ctx, conf.ID)
	if len(roster.Participants) != 2 || len(roster.Lobby) != 0 {
		t.Fatalf("roster after Bob's join: %+v", roster)
	}
}

func sameMember(got, want federation.RosterMember) bool {
	got.JoinedSeq, got.JoinEvent = 0, ""
	return got == want
}

// A Matrix guest on a node without the Matrix bridge is refused everything
// but reading who they are: no portal room can vouch for them.
func TestMatrixGuestWithoutBridgeIsRefused(t *testing.T) {
	f := nodetest.New(t)
	a := f.Start(t, "Ministry", nil)
	ctx := context.Background()
	alice, _ := nodetest.User(t, a, "alice", "Alice")
	conf, err := a.Federation().CreateConference(ctx, alice, "Not for Matrix", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := accounts.IssueMatrixGuest(ctx, a.Store(), "@mona:matrix.ministry.example", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	guest := clientFor(t, f, a, tok)
	var me map[string]any
	guest.must(200, "GET", "/me", nil, &me)
	if me["display_name"] != "@mona:matrix.ministry.example" || me["admin"] != false {
		t.Fatalf("me: %v", me)
	}
	var list []federation.ConferenceView
	guest.must(200, "GET", "/conferences", nil, &list)
	if len(list) != 0 {
		t.Fatalf("a guest sees %d conferences", len(list))
	}
	noBridge := `{"error":{"code":"forbidden","message":"this node runs no Matrix bridge: Matrix guests may not join its conferences"}}`
	for _, path := range []string{"/conferences/" + conf.ID, "/conferences/" + conf.ID + "/participants"} {
		if code, body := guest.do("GET", path, nil, nil); code != 403 || withoutRequestIDField(body) != noBridge {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	if code, body := guest.do("POST", "/conferences/"+conf.ID+"/join", nil, nil); code != 403 || withoutRequestIDField(body) != noBridge {
		t.Errorf("join: %d %s", code, body)
	}
	roster, _ := a.Federation().LocalRoster(ctx, conf.ID)
	if len(roster.Participants) != 0 || len(roster.Lobby) != 0 {
		t.Fatalf("the refused guest is in the roster: %+v", roster)
	}
	if _, err := accounts.AddUser(ctx, a.Store(), "mx.0123456789abcdef", "Impostor", false, time.Now()); err == nil {
		t.Fatal("a local user took a Matrix guest's name")
	}
}

// requestIDField is the request id every error body carries (spec/client-api.md §1).
var requestIDField = regexp.MustCompile(`,"request_id":"[0-9a-f]{24}"`)

// withoutRequestIDField returns an error body without its request id, so
// that the rest can be compared exactly.
func withoutRequestIDField(body string) string {
	return requestIDField.ReplaceAllString(strings.TrimSpace(body), "")
}
