package bridge_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/nodetest"
)

// A Matrix user who was in no room of the node reaches the call by the
// README's path only: the administrator creates the conference's room
// inviting them, they accept the invitation in their Matrix client, sign in
// with an OpenID token from it, and join. A moderator invites another
// Matrix user from the client API; others may not.
func TestInvitedMatrixUserReachesTheCall(t *testing.T) {
	f, n, hs := startBridgedNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice, aliceTok := nodetest.User(t, n, "alice", "Alice Martin")
	_, bobTok := nodetest.User(t, n, "bob", "Bob Durand")
	if _, err := accounts.AddUser(ctx, n.Store(), "root", "Admin", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	adminTok, _ := accounts.IssueToken(ctx, n.Store(), "root", time.Hour, time.Now())
	admin := newAPI(t, f, n, adminTok)
	conf, err := n.Federation().CreateConference(ctx, alice, "Budget 2027", nil)
	if err != nil {
		t.Fatal(err)
	}
	mona, nina := hs.User(ctx, "mona"), hs.User(ctx, "nina")

	var created struct {
		Conference string    `json:"conference"`
		RoomID     id.RoomID `json:"room_id"`
		Invited    []string  `json:"invited"`
	}
	admin.call("POST", "/admin/v1/conferences/"+conf.ID+"/matrix", map[string]any{"invite": []string{"@mona:localhost"}}, &created, 200)
	if created.Conference != conf.ID || created.RoomID == "" || len(created.Invited) != 1 || created.Invited[0] != "@mona:localhost" {
		t.Fatalf("room created: %+v", created)
	}
	// Mona finds the invitation in her client and accepts it.
	nodetest.Eventually(t, 30*time.Second, "Mona's invitation", func() bool {
		return membership(ctx, mona, created.RoomID) == event.MembershipInvite
	})
	if _, err := mona.JoinRoomByID(ctx, created.RoomID); err != nil {
		t.Fatal(err)
	}
	tok, err := mona.RequestOpenIDToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var login map[string]string
	newAPI(t, f, n, "").call("POST", "/api/v1/matrix/openid", map[string]string{"access_token": tok.AccessToken, "matrix_server_name": tok.MatrixServerName}, &login, 200)
	guest := newAPI(t, f, n, login["token"])
	guest.call("POST", "/api/v1/conferences/"+conf.ID+"/join", nil, nil, 200)
	var roster federation.Roster
	guest.call("GET", "/api/v1/conferences/"+conf.ID+"/participants", nil, &roster, 200)
	if len(roster.Participants) != 1 || roster.Participants[0].DisplayName != "@mona:localhost" {
		t.Fatalf("roster: %+v", roster.Participants)
	}

	// Alice, the creator, invites Nina from the client; Bob and Mona may not.
	invite := "/api/v1/conferences/" + conf.ID + "/matrix/invitations"
	nobody := func(who string) string {
		b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "forbidden", "message": who + " is not a moderator of " + conf.ID}})
		return string(b)
	}
	if code, body := newAPI(t, f, n, bobTok).do("POST", invite, map[string]any{"users": []string{"@nina:localhost"}}); code != 403 || body != nobody("bob") {
		t.Errorf("Bob's invitation: %d %s", code, body)
	}
	if code, body := guest.do("POST", invite, map[string]any{"users": []string{"@nina:localhost"}}); code != 403 || body != nobody(guestID(t, guest)) {
		t.Errorf("Mona's invitation: %d %s", code, body)
	}
	if m := membership(ctx, mona, created.RoomID, nina.UserID); m != "" {
		t.Fatalf("Nina's membership after refused invitations: %q", m)
	}
	aliceAPI := newAPI(t, f, n, aliceTok)
	if code, body := aliceAPI.do("POST", invite, map[string]any{"users": []string{"nina"}}); code != 400 ||
		body != `{"error":{"code":"bad_request","message":"invite: \"nina\": not a Matrix user id (\"@name:server\")"}}` {
		t.Errorf("invitation of a malformed id: %d %s", code, body)
	}
	var invited map[string]any
	aliceAPI.call("POST", invite, map[string]any{"users": []string{"@nina:localhost", "@mona:localhost"}}, &invited, 200)
	if got, _ := json.Marshal(invited["invited"]); string(got) != `["@nina:localhost"]` {
		t.Errorf("invited %s, want only Nina (Mona is in the room)", got)
	}
	if m := membership(ctx, mona, created.RoomID, nina.UserID); m != event.MembershipInvite {
		t.Errorf("Nina's membership: %q, want invite", m)
	}
}

// membership is user's membership of room as cli sees it; user defaults to
// cli's own.
func membership(ctx context.Context, cli *mautrix.Client, room id.RoomID, user ...id.UserID) event.Membership {
	who := cli.UserID
	if len(user) > 0 {
		who = user[0]
	}
	var m event.MemberEventContent
	if err := cli.StateEvent(ctx, room, event.StateMember, who.String(), &m); err != nil {
		return ""
	}
	return m.Membership
}
