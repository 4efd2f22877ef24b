package bridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/nodetest"
)

// The README's other ways in: the administrator publishes the conference's
// room under an address, and a Matrix user who was never invited joins it
// by that address, signs in with OpenID and joins the call; or adds the
// room to a space, whose members are invited. Bad addresses and spaces are
// refused, naming what was wrong.
func TestPublishedRoomIsJoinedByAlias(t *testing.T) {
	f, n, hs := startBridgedNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice, _ := nodetest.User(t, n, "alice", "Alice Martin")
	if _, err := accounts.AddUser(ctx, n.Store(), "root", "Admin", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	adminTok, _ := accounts.IssueToken(ctx, n.Store(), "root", time.Hour, time.Now())
	admin := newAPI(t, f, n, adminTok)
	conf, err := n.Federation().CreateConference(ctx, alice, "Budget 2027", nil)
	if err != nil {
		t.Fatal(err)
	}
	path := "/admin/v1/conferences/" + conf.ID + "/matrix"

	// Refusals first: nothing is created by them.
	if code, body := admin.do("POST", path, map[string]any{"alias": "#budget:other.example"}); code != 400 ||
		body != `{"error":{"code":"bad_request","message":"matrix room: \"#budget:other.example\": not a room alias of the bridge's homeserver (\"#name:localhost\")"}}` {
		t.Errorf("alias of another server: %d %s", code, body)
	}
	if code, body := admin.do("POST", path, map[string]any{"space": "budget"}); code != 400 ||
		body != `{"error":{"code":"bad_request","message":"matrix room: space \"budget\": not a Matrix room id (\"!id:server\")"}}` {
		t.Errorf("malformed space: %d %s", code, body)
	}

	if _, err := n.Store().GetBridgePortal(ctx, conf.ID); err == nil {
		t.Errorf("refused requests created a room")
	}
	var created struct {
		RoomID  id.RoomID `json:"room_id"`
		Alias   string    `json:"alias"`
		Invited []string  `json:"invited"`
	}
	admin.call("POST", path, map[string]any{"alias": "#budget-2027:localhost"}, &created, 200)
	if created.Alias != "#budget-2027:localhost" || created.RoomID == "" || len(created.Invited) != 0 {
		t.Fatalf("published: %+v", created)
	}
	// Publishing again changes nothing.
	admin.call("POST", path, map[string]any{"alias": "#budget-2027:localhost"}, nil, 200)

	// Olga was invited nowhere; she joins by the address.
	olga := hs.User(ctx, "olga")
	joined, err := olga.JoinRoom(ctx, "#budget-2027:localhost", nil)
	if err != nil {
		t.Fatalf("join by alias: %v", err)
	}
	if joined.RoomID != created.RoomID {
		t.Fatalf("the alias leads to %s, want %s", joined.RoomID, created.RoomID)
	}
	var canonical event.CanonicalAliasEventContent
	if err := olga.StateEvent(ctx, created.RoomID, event.StateCanonicalAlias, "", &canonical); err != nil || canonical.Alias != "#budget-2027:localhost" {
		t.Errorf("canonical alias %+v (%v)", canonical, err)
	}
	tok, err := olga.RequestOpenIDToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var login map[string]string
	newAPI(t, f, n, "").call("POST", "/api/v1/matrix/openid", map[string]string{"access_token": tok.AccessToken, "matrix_server_name": tok.MatrixServerName}, &login, 200)
	guest := newAPI(t, f, n, login["token"])
	guest.call("POST", "/api/v1/conferences/"+conf.ID+"/join", nil, nil, 200)
	var roster federation.Roster
	guest.call("GET", "/api/v1/conferences/"+conf.ID+"/participants", nil, &roster, 200)
	if len(roster.Participants) != 1 || roster.Participants[0].DisplayName != "@olga:localhost" {
		t.Fatalf("roster: %+v", roster.Participants)
	}

	// Another conference's room cannot take the address.
	other, err := n.Federation().CreateConference(ctx, alice, "Other", nil)
	if err != nil {
		t.Fatal(err)
	}
	code, body := admin.do("POST", "/admin/v1/conferences/"+other.ID+"/matrix", map[string]any{"alias": "#budget-2027:localhost"})
	if code != 409 || !strings.Contains(body, `alias #budget-2027:localhost already names room `+created.RoomID.String()) {
		t.Errorf("an alias taken by another room: %d %s", code, body)
	}

	// A space: Paul and Quentin are in it, the bot is invited; both are
	// invited to the room, the room and the space name each other.
	paul, quentin := hs.User(ctx, "paul"), hs.User(ctx, "quentin")
	bot := id.NewUserID("entente", "localhost")
	space, err := paul.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", CreationContent: map[string]any{"type": "m.space"},
		Invite: []id.UserID{quentin.UserID, bot}, PowerLevelOverride: botAdministers(paul.UserID)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quentin.JoinRoomByID(ctx, space.RoomID); err != nil {
		t.Fatal(err)
	}
	var spaced struct {
		Space   string   `json:"space"`
		Invited []string `json:"invited"`
	}
	admin.call("POST", path, map[string]any{"space": space.RoomID.String()}, &spaced, 200)
	if spaced.Space != space.RoomID.String() || len(spaced.Invited) != 2 ||
		!(spaced.Invited[0] == "@paul:localhost" && spaced.Invited[1] == "@quentin:localhost" ||
			spaced.Invited[1] == "@paul:localhost" && spaced.Invited[0] == "@quentin:localhost") {
		t.Errorf("space linked: %+v, want Paul and Quentin invited", spaced)
	}
	var child event.SpaceChildEventContent
	if err := paul.StateEvent(ctx, space.RoomID, event.StateSpaceChild, created.RoomID.String(), &child); err != nil || len(child.Via) != 1 || child.Via[0] != "localhost" {
		t.Errorf("m.space.child %+v (%v)", child, err)
	}
	var parent event.SpaceParentEventContent
	if err := olga.StateEvent(ctx, created.RoomID, event.StateSpaceParent, space.RoomID.String(), &parent); err != nil || !parent.Canonical || len(parent.Via) != 1 {
		t.Errorf("m.space.parent %+v (%v)", parent, err)
	}
	if m := membership(ctx, quentin, created.RoomID); m != event.MembershipInvite {
		t.Errorf("Quentin's membership of the room: %q, want invite", m)
	}
}

// In a linked room where the bot may not change the join rule or the
// canonical alias, publishing answers 403 naming each missing power level,
// and the alias is not created.
func TestPublishNeedsPowerLevels(t *testing.T) {
	f, n, hs := startBridgedNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice, _ := nodetest.User(t, n, "alice", "Alice Martin")
	if _, err := accounts.AddUser(ctx, n.Store(), "root", "Admin", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	adminTok, _ := accounts.IssueToken(ctx, n.Store(), "root", time.Hour, time.Now())
	admin := newAPI(t, f, n, adminTok)
	conf, err := n.Federation().CreateConference(ctx, alice, "Budget 2027", nil)
	if err != nil {
		t.Fatal(err)
	}
	mona := hs.User(ctx, "mona")
	bot := id.NewUserID("entente", "localhost")
	pl := botAdministers(mona.UserID)
	pl.Users[bot] = 50
	pl.Events = map[string]int{"m.room.join_rules": 100, "m.room.canonical_alias": 100, "im.vector.modular.widgets": 50, "org.matrix.msc3401.call.member": 0}
	room, err := mona.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bot}, PowerLevelOverride: pl})
	if err != nil {
		t.Fatal(err)
	}
	path := "/admin/v1/conferences/" + conf.ID + "/matrix"
	admin.call("POST", path, map[string]any{"room_id": room.RoomID}, nil, 200)
	code, body := admin.do("POST", path, map[string]any{"room_id": room.RoomID, "alias": "#budget-2027:localhost"})
	want := `{"error":{"code":"forbidden","message":"matrix room ` + room.RoomID.String() + ` lacks power levels the bridge needs: ` +
		`the bot @entente:localhost needs power level 100 for m.room.join_rules events, and has 50; ` +
		`the bot @entente:localhost needs power level 100 for m.room.canonical_alias events, and has 50"}}`
	if code != 403 || body != want {
		t.Errorf("publishing without the power levels: %d %s\nwant 403 %s", code, body, want)
	}
	if _, err := mona.ResolveAlias(ctx, "#budget-2027:localhost"); err == nil {
		t.Errorf("the alias was created although publishing was refused")
	}
}
