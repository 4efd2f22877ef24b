package bridge_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/dendritetest"
	"github.com/entente-org/entente/internal/nodetest"
)

// A Matrix user signed in with OpenID is a guest (spec/client-api.md §6):
// they see and join only the conferences whose portal room they are in, as
// the homeserver says at that moment, wait in the lobby when it is on, and
// may never create, invite, moderate or administer. A Matrix user in no
// portal room gets no token at all.
func TestMatrixGuestReachesOnlyItsPortalRooms(t *testing.T) {
	f, n, hs := startBridgedNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice, _ := nodetest.User(t, n, "alice", "Alice Martin")
	if _, err := accounts.AddUser(ctx, n.Store(), "root", "Admin", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	adminTok, _ := accounts.IssueToken(ctx, n.Store(), "root", time.Hour, time.Now())
	admin := newAPI(t, f, n, adminTok)
	mona, nina := hs.User(ctx, "mona"), hs.User(ctx, "nina")

	// open: a room Mona is in. lobby: the same, with the lobby on.
	// closed: a room Mona is not in. unbridged: no room at all.
	linked := func(title string, lobby bool, owner *mautrix.Client) (string, id.RoomID) {
		conf, err := n.Federation().Create(ctx, alice, federation.CreateContent{Title: title, Lobby: lobby})
		if err != nil {
			t.Fatal(err)
		}
		room, err := owner.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: title,
			PowerLevelOverride: botAdministers(owner.UserID)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := owner.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: id.NewUserID("entente", dendritetest.ServerName)}); err != nil {
			t.Fatal(err)
		}
		admin.call("POST", "/admin/v1/conferences/"+conf.ID+"/matrix", map[string]string{"room_id": room.RoomID.String()}, nil, 200)
		return conf.ID, room.RoomID
	}
	open, openRoom := linked("Open", false, mona)
	lobby, _ := linked("Lobby", true, mona)
	closed, _ := linked("Closed", false, hs.User(ctx, "olga"))
	unbridged, err := n.Federation().CreateConference(ctx, alice, "Unbridged", nil)
	if err != nil {
		t.Fatal(err)
	}

	anon := newAPI(t, f, n, "")
	signIn := func(cli *mautrix.Client) (int, string) {
		tok, err := cli.RequestOpenIDToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return anon.do("POST", "/api/v1/matrix/openid", map[string]string{"access_token": tok.AccessToken, "matrix_server_name": tok.MatrixServerName})
	}

	// Nina is in no portal room: refused at sign-in, with no token.
	code, body := signIn(nina)
	wantNina := `{"error":{"code":"forbidden","message":"@nina:localhost is in no Matrix room of a conference of this node; ask the conference's moderators to invite you to its room"}}`
	if code != 403 || body != wantNina {
		t.Fatalf("Nina's sign-in: %d %s", code, body)
	}

	code, body = signIn(mona)
	var login map[string]string
	if code != 200 || json.Unmarshal([]byte(body), &login) != nil || login["user"] != "@mona:localhost" {
		t.Fatalf("Mona's sign-in: %d %s", code, body)
	}
	guest := newAPI(t, f, n, login["token"])

	var list []federation.ConferenceView
	guest.call("GET", "/api/v1/conferences", nil, &list, 200)
	if len(list) != 2 || list[0].ID != lobby || list[1].ID != open {
		t.Fatalf("Mona's conferences: %+v; want %s and %s", list, lobby, open)
	}

	forbidden := func(msg string) string {
		b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "forbidden", "message": msg}})
		return string(b)
	}
	notIn := func(conf string) string {
		return forbidden("@mona:localhost is not in the Matrix room of conference " + conf)
	}
	onlyPortal := forbidden("a Matrix guest may only see, join, chat in and leave the conferences whose Matrix room they are in")
	refusals := []struct {
		method, path string
		body         any
		status       int
		want         string
	}{
		{"GET", "/api/v1/conferences/" + closed, nil, 403, notIn(closed)},
		{"POST", "/api/v1/conferences/" + closed + "/join", nil, 403, notIn(closed)},
		{"GET", "/api/v1/conferences/" + closed + "/participants", nil, 403, notIn(closed)},
		{"GET", "/api/v1/conferences/" + closed + "/media", nil, 403, notIn(closed)},
		{"POST", "/api/v1/conferences/" + unbridged.ID + "/join", nil, 403, notIn(unbridged.ID)},
		{"POST", "/api/v1/conferences/" + unbridged.ID + "/leave", nil, 403, notIn(unbridged.ID)},
		{"POST", "/api/v1/conferences", map[string]string{"title": "Mine"}, 403, onlyPortal},
		{"POST", "/api/v1/conferences/" + open + "/invitations", map[string]string{"node": "did:web:other.example"}, 403, onlyPortal},
		{"POST", "/api/v1/conferences/" + open + "/lock", nil, 403, onlyPortal},
		{"POST", "/api/v1/conferences/" + open + "/end", nil, 403, onlyPortal},
		{"POST", "/api/v1/conferences/" + open + "/lobby", map[string]bool{"on": true}, 403, onlyPortal},
		{"POST", "/api/v1/conferences/" + lobby + "/admit", map[string]string{"user": "alice@" + n.DID()}, 403, onlyPortal},
		{"GET", "/api/v1/invitations", nil, 403, onlyPortal},
		{"GET", "/api/v1/peers", nil, 403, onlyPortal},
		{"GET", "/admin/v1/peers", nil, 403, forbidden(guestID(t, guest) + " is not an administrator of this node")},
		{"POST", "/admin/v1/conferences/" + open + "/matrix", nil, 403, forbidden(guestID(t, guest) + " is not an administrator of this node")},
	}
	for _, r := range refusals {
		if code, body := guest.do(r.method, r.path, r.body); code != r.status || body != r.want {
			t.Errorf("%s %s: %d %s; want %d %s", r.method, r.path, code, body, r.status, r.want)
		}
	}
	// Nothing the guest tried changed a conference.
	for _, c := range []string{open, lobby, closed, unbridged.ID} {
		v, err := n.Federation().ConferenceDetail(ctx, c)
		if err != nil || v.Locked || v.Ended || len(v.Participants) != 0 || len(v.Waiting) != 0 || len(v.Nodes) != 0 {
			t.Errorf("conference %s changed: %+v, %v", c, v, err)
		}
	}

	// Mona joins the open conference under her homeserver's name, and
	// waits in the lobby of the other.
	guest.call("POST", "/api/v1/conferences/"+open+"/join", nil, nil, 200)
	guest.call("POST", "/api/v1/conferences/"+lobby+"/join", nil, nil, 200)
	ref := guestID(t, guest) + "@" + n.DID()
	want := federation.RosterMember{User: ref, DisplayName: "@mona:localhost", Organisation: "localhost (Matrix)", Node: n.DID()}
	var roster federation.Roster
	guest.call("GET", "/api/v1/conferences/"+open+"/participants", nil, &roster, 200)
	if len(roster.Participants) != 1 || !sameMember(roster.Participants[0], want) {
		t.Fatalf("open conference's roster: %+v", roster.Participants)
	}
	guest.call("GET", "/api/v1/conferences/"+lobby+"/participants", nil, &roster, 200)
	if len(roster.Participants) != 0 || len(roster.Lobby) != 1 || !sameMember(roster.Lobby[0], want) {
		t.Fatalf("lobby conference's roster: %+v, lobby %+v", roster.Participants, roster.Lobby)
	}

	// Once Mona left the room, the homeserver no longer vouches for her
	// there: she may still leave the call, and nothing more.
	if _, err := mona.LeaveRoom(ctx, openRoom); err != nil {
		t.Fatal(err)
	}
	if code, body := guest.do("GET", "/api/v1/conferences/"+open, nil); code != 403 || body != notIn(open) {
		t.Errorf("conference after leaving its room: %d %s", code, body)
	}
	guest.call("POST", "/api/v1/conferences/"+open+"/leave", nil, nil, 200)
	if code, body := guest.do("POST", "/api/v1/conferences/"+open+"/join", nil); code != 403 || body != notIn(open) {
		t.Errorf("join after leaving the room: %d %s", code, body)
	}
	guest.call("GET", "/api/v1/conferences", nil, &list, 200)
	if len(list) != 1 || list[0].ID != lobby {
		t.Fatalf("Mona's conferences after leaving a room: %+v", list)
	}
}

func sameMember(got, want federation.RosterMember) bool {
	got.JoinedSeq, got.JoinEvent = 0, ""
	return got == want
}

// guestID is the local name of the signed-in guest.
func guestID(t *testing.T, a *api) string {
	t.Helper()
	var me map[string]any
	a.call("GET", "/api/v1/me", nil, &me, 200)
	local, _ := me["id"].(string)
	if !strings.HasPrefix(local, "mx.") {
		t.Fatalf("guest id %q", local)
	}
	return local
}

// do sends a request and returns the status and the body, trimmed.
func (a *api) do(method, path string, body any) (int, string) {
	a.t.Helper()
	r := strings.NewReader("")
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := newRequest(method, a.base+path, r)
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.f.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, withoutRequestID(a.t, resp.Header.Get("X-Request-Id"), strings.TrimSpace(string(raw)))
}

// withoutRequestID takes out of an error body the request id every error
// carries (spec/client-api.md §1), after checking that it is the one of the
// X-Request-Id header, so that tests can compare the rest exactly.
func withoutRequestID(t *testing.T, id, body string) string {
	t.Helper()
	field := `,"request_id":"` + id + `"`
	if !strings.HasPrefix(body, `{"error":`) {
		return body
	}
	if id == "" || !strings.Contains(body, field) {
		t.Fatalf("error body %s does not carry the request id %q of its X-Request-Id header", body, id)
	}
	return strings.Replace(body, field, "", 1)
}
