package node_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/nodetest"
)

// guestClient speaks the client API of one node with one token.
type guestClient struct {
	t     *testing.T
	f     *nodetest.Federation
	n     *nodetest.Node
	token string
}

// do sends a request and returns the status and the body, trimmed, with
// the request id of an error taken out after checking it is the one of the
// X-Request-Id header.
func (c guestClient) do(method, path string, body any) (int, string) {
	c.t.Helper()
	var r io.Reader = strings.NewReader("")
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, c.n.PublicURL()+path, r)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.f.Client().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := strings.TrimSpace(string(raw))
	if strings.HasPrefix(out, `{"error":`) {
		field := `,"request_id":"` + resp.Header.Get("X-Request-Id") + `"`
		if !strings.Contains(out, field) {
			c.t.Fatalf("error body %s does not carry the request id of its X-Request-Id header", out)
		}
		out = strings.Replace(out, field, "", 1)
	}
	return resp.StatusCode, out
}

// must is do with an expected status, decoding the body into out.
func (c guestClient) must(method, path string, body any, status int, out any) {
	c.t.Helper()
	code, raw := c.do(method, path, body)
	if code != status {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, code, raw, status)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(raw), out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
}

func errBody(code, message string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message}})
	return string(b)
}

type linkAnswer struct {
	ID         string    `json:"id"`
	Conference string    `json:"conference"`
	CreatedBy  string    `json:"created_by"`
	ExpiresAt  time.Time `json:"expires_at"`
	MaxGuests  int       `json:"max_guests"`
	Guests     int       `json:"guests"`
	Revoked    bool      `json:"revoked"`
	Link       string    `json:"link"`
	URL        string    `json:"url"`
}

// TestGuestLink drives a guest link through the client API of two real
// nodes (spec/client-api.md §7): a moderator makes it, a guest redeems it,
// knocks although the lobby is off, is admitted, is refused everything but
// their conference, and the other organisation's verified roster shows them
// as "Name (guest, unverified)" of the host's organisation. A revoked, an
// expired, a wrong and a full link are refused with their reason.
func TestGuestLink(t *testing.T) {
	f := nodetest.New(t)
	finance := f.Start(t, "Ministry of Finance", nil)
	agency := f.Start(t, "Statistics Agency", nil)
	nodetest.Trust(t, finance, agency)
	_, aliceTok := nodetest.User(t, finance, "alice", "Alice Martin")
	_, carolTok := nodetest.User(t, finance, "carol", "Carol")
	_, brunoTok := nodetest.User(t, agency, "bruno", "Bruno Lefèvre")
	alice := guestClient{t, f, finance, aliceTok}
	carol := guestClient{t, f, finance, carolTok}
	bruno := guestClient{t, f, agency, brunoTok}
	anyone := guestClient{t, f, finance, ""}

	var conf, other federation.ConferenceView
	alice.must("POST", "/api/v1/conferences", map[string]any{"title": "Public consultation"}, 201, &conf)
	alice.must("POST", "/api/v1/conferences", map[string]any{"title": "Budget 2027"}, 201, &other)
	alice.must("POST", "/api/v1/conferences/"+conf.ID+"/invitations", map[string]any{"node": agency.DID()}, 201, nil)
	nodetest.Eventually(t, 15*time.Second, "the invitation at the agency", func() bool {
		code, _ := bruno.do("POST", "/api/v1/invitations/"+conf.ID+"/accept", nil)
		return code == 200
	})
	bruno.must("POST", "/api/v1/conferences/"+conf.ID+"/join", map[string]any{}, 200, nil)

	// Making links: a moderator only, with a lifetime in bounds.
	links := "/api/v1/conferences/" + conf.ID + "/guest-links"
	for _, c := range []struct {
		who  guestClient
		body map[string]any
		code int
		want string
	}{
		{carol, map[string]any{"expires_in": 3600}, 403, errBody("forbidden", "carol is not a moderator of "+conf.ID)},
		{anyone, map[string]any{"expires_in": 3600}, 401, errBody("unauthorized", "sign in: no bearer token or session")},
		{alice, map[string]any{"expires_in": 59}, 400, errBody("bad_request", "expires_in must be 60 to 2592000 seconds")},
		{alice, map[string]any{"expires_in": 2592001}, 400, errBody("bad_request", "expires_in must be 60 to 2592000 seconds")},
		{alice, map[string]any{"expires_in": 3600, "max_guests": -1}, 400, errBody("bad_request", "max_guests must be 0 (no bound) to 1000")},
	} {
		if code, body := c.who.do("POST", links, c.body); code != c.code || body != c.want {
			t.Errorf("POST guest-links %v as %q: %d %s, want %d %s", c.body, c.who.token, code, body, c.code, c.want)
		}
	}
	var link linkAnswer
	alice.must("POST", links, map[string]any{"expires_in": 3600}, 201, &link)
	if link.Conference != conf.ID || link.CreatedBy != "alice@"+finance.DID() || link.MaxGuests != 0 || link.Guests != 0 ||
		link.Revoked || !strings.HasPrefix(link.Link, link.ID+".") || link.URL != finance.PublicURL()+"/app/guest#"+link.Link ||
		time.Until(link.ExpiresAt) < 59*time.Minute || time.Until(link.ExpiresAt) > time.Hour {
		t.Fatalf("new link %+v", link)
	}

	// The guest redeems it with a name.
	if code, body := anyone.do("POST", "/api/v1/guests", map[string]any{"link": link.Link, "display_name": " "}); code != 400 ||
		body != errBody("bad_request", "display_name must be 1 to 80 bytes on one line") {
		t.Errorf("redeem without a name: %d %s", code, body)
	}
	var redeemed struct {
		Token      string `json:"token"`
		User       string `json:"user"`
		Conference string `json:"conference"`
	}
	anyone.must("POST", "/api/v1/guests", map[string]any{"link": link.Link, "display_name": "Zoé Durand"}, 201, &redeemed)
	if redeemed.Conference != conf.ID || !strings.HasPrefix(redeemed.User, "guest.") || !strings.HasSuffix(redeemed.User, "@"+finance.DID()) {
		t.Fatalf("redeemed %+v", redeemed)
	}
	guest := guestClient{t, f, finance, redeemed.Token}
	var me map[string]any
	guest.must("GET", "/api/v1/me", nil, 200, &me)
	if me["user"] != redeemed.User || me["display_name"] != "Zoé Durand" || me["admin"] != false || me["guest_of"] != conf.ID {
		t.Fatalf("guest's /me %v", me)
	}

	// The guest knocks although the lobby is off, and waits.
	guest.must("POST", "/api/v1/conferences/"+conf.ID+"/join", map[string]any{}, 200, nil)
	want := federation.RosterMember{User: redeemed.User, DisplayName: "Zoé Durand (guest, unverified)",
		Organisation: "Ministry of Finance", Guest: true, Node: finance.DID()}
	var roster federation.RosterView
	alice.must("GET", "/api/v1/conferences/"+conf.ID+"/participants", nil, 200, &roster)
	if len(roster.Lobby) != 1 || !sameMember(roster.Lobby[0].RosterMember, want) {
		t.Fatalf("lobby %+v, want %+v", roster.Lobby, want)
	}
	if code, _ := guest.do("GET", "/api/v1/conferences/"+conf.ID+"/media", nil); code != 403 {
		t.Errorf("media while waiting: %d, want 403", code)
	}
	alice.must("POST", "/api/v1/conferences/"+conf.ID+"/admit", map[string]any{"user": redeemed.User}, 200, nil)

	// The other organisation sees the guest, verified in its replica, with
	// the label the host signed.
	nodetest.Eventually(t, 15*time.Second, "the guest in the agency's verified roster", func() bool {
		var r federation.RosterView
		code, _ := bruno.do("GET", "/api/v1/conferences/"+conf.ID+"/participants", nil)
		if code != 200 {
			return false
		}
		bruno.must("GET", "/api/v1/conferences/"+conf.ID+"/participants", nil, 200, &r)
		for _, p := range r.Participants {
			if p.User == want.User {
				if !sameMember(p.RosterMember, want) {
					t.Fatalf("the agency shows the guest as %+v, want %+v", p.RosterMember, want)
				}
				return true
			}
		}
		return false
	})

	// The guest sees their conference only, and may do nothing else.
	var list []federation.ConferenceView
	guest.must("GET", "/api/v1/conferences", nil, 200, &list)
	if len(list) != 1 || list[0].ID != conf.ID {
		t.Fatalf("the guest's conference list %+v", list)
	}
	guest.must("GET", "/api/v1/conferences/"+conf.ID, nil, 200, nil)
	outside := errBody("forbidden", "a guest may only see, join, chat in and leave conference "+conf.ID)
	for _, c := range []struct {
		method, path string
		body         any
		code         int
		want         string
	}{
		{"GET", "/api/v1/conferences/" + other.ID, nil, 403, errBody("forbidden", "a guest sees only conference "+conf.ID)},
		{"POST", "/api/v1/conferences/" + other.ID + "/join", map[string]any{}, 403, errBody("forbidden", "a guest sees only conference "+conf.ID)},
		{"POST", "/api/v1/conferences", map[string]any{"title": "Mine"}, 403, outside},
		{"GET", "/api/v1/peers", nil, 403, outside},
		{"GET", "/api/v1/invitations", nil, 403, outside},
		{"POST", "/api/v1/conferences/" + conf.ID + "/invitations", map[string]any{"node": agency.DID()}, 403, outside},
		{"POST", "/api/v1/conferences/" + conf.ID + "/lock", map[string]any{}, 403, outside},
		{"POST", "/api/v1/conferences/" + conf.ID + "/remove", map[string]any{"user": "bruno@" + agency.DID()}, 403, outside},
		{"POST", "/api/v1/conferences/" + conf.ID + "/lobby", map[string]any{"on": true}, 403, outside},
		{"POST", links, map[string]any{"expires_in": 3600}, 403, outside},
		{"GET", links, nil, 403, outside},
		{"GET", "/admin/v1/peers", nil, 403, errBody("forbidden", strings.TrimSuffix(redeemed.User, "@"+finance.DID())+" is not an administrator of this node")},
	} {
		if code, body := guest.do(c.method, c.path, c.body); code != c.code || body != c.want {
			t.Errorf("guest %s %s: %d %s, want %d %s", c.method, c.path, code, body, c.code, c.want)
		}
	}

	// Listing and revoking.
	var listed []linkAnswer
	alice.must("GET", links, nil, 200, &listed)
	if len(listed) != 1 || listed[0].ID != link.ID || listed[0].Guests != 1 || listed[0].Link != "" || listed[0].URL != "" {
		t.Fatalf("listed links %+v", listed)
	}
	if code, body := carol.do("DELETE", links+"/"+link.ID, nil); code != 403 || body != errBody("forbidden", "carol is not a moderator of "+conf.ID) {
		t.Errorf("carol revokes: %d %s", code, body)
	}
	if code, body := alice.do("DELETE", "/api/v1/conferences/"+other.ID+"/guest-links/"+link.ID, nil); code != 404 ||
		body != errBody("not_found", "conference "+other.ID+" has no guest link "+link.ID) {
		t.Errorf("revoke through another conference: %d %s", code, body)
	}
	var revoked linkAnswer
	alice.must("DELETE", links+"/"+link.ID, nil, 200, &revoked)
	if !revoked.Revoked || revoked.Guests != 1 {
		t.Fatalf("revoked %+v", revoked)
	}
	redeem := func(l string) (int, string) {
		return anyone.do("POST", "/api/v1/guests", map[string]any{"link": l, "display_name": "Yann"})
	}
	if code, body := redeem(link.Link); code != 410 || body != errBody("link_revoked", "this guest link was revoked by a moderator") {
		t.Errorf("revoked link: %d %s", code, body)
	}

	// An expired link, made an hour ago for an hour.
	past := time.Now().Add(-time.Hour - time.Second)
	expired, text, err := accounts.NewGuestLink(context.Background(), finance.Store(), conf.ID, "alice@"+finance.DID(), time.Hour, 0, past)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := redeem(text); code != 410 ||
		body != errBody("link_expired", "this guest link expired at "+expired.ExpiresAt.Format(time.RFC3339)) {
		t.Errorf("expired link: %d %s", code, body)
	}

	// A wrong secret, a malformed link, a full link.
	var full linkAnswer
	alice.must("POST", links, map[string]any{"expires_in": 60, "max_guests": 1}, 201, &full)
	for _, c := range []struct {
		link, want string
		code       int
	}{
		{full.ID + ".wrong", errBody("link_invalid", "this guest link is not valid"), 403},
		{"gl-00000000.x", errBody("link_invalid", "this guest link is not valid"), 403},
		{"not a link", errBody("bad_request", `link must be the "<id>.<secret>" of a guest link`), 400},
	} {
		if code, body := redeem(c.link); code != c.code || body != c.want {
			t.Errorf("redeem %q: %d %s, want %d %s", c.link, code, body, c.code, c.want)
		}
	}
	if code, _ := redeem(full.Link); code != 201 {
		t.Fatalf("first guest of a one-guest link: %d", code)
	}
	if code, body := redeem(full.Link); code != 403 || body != errBody("link_full", "this guest link has already let in the 1 guests it allows") {
		t.Errorf("second guest of a one-guest link: %d %s", code, body)
	}

	// One address tries at most 30 links within 10 minutes: nine so far.
	for i := 9; i < 30; i++ {
		if code, _ := redeem(full.Link); code != 403 {
			t.Fatalf("try %d: %d, want 403", i+1, code)
		}
	}
	if code, body := redeem(full.Link); code != 429 ||
		body != errBody("too_many_requests", "too many guest links tried from your address: wait a few minutes") {
		t.Errorf("try 31: %d %s", code, body)
	}

	// The guests' prefix is reserved.
	if _, err := accounts.AddUser(context.Background(), finance.Store(), "guest.alice", "Alice", false, time.Now()); err == nil ||
		err.Error() != `user name "guest.alice": names starting with "guest." are kept for guests of guest links` {
		t.Errorf("AddUser guest.alice: %v", err)
	}
}

func sameMember(got, want federation.RosterMember) bool {
	got.JoinedSeq, got.JoinEvent = 0, ""
	return got == want
}
