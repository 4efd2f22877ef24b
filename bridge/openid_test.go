package bridge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/internal/dendritetest"
)

func TestOpenIDLogin(t *testing.T) {
	e := newEnv(t)
	hs := startHomeserver(t, e.writeRegistration(t))
	e.opts.HomeserverURL = hs.URL
	e.opts.OpenIDServerName = testServerName
	e.opts.OpenIDBaseURL = hs.URL
	var (
		mu     sync.Mutex
		issued []string
	)
	e.opts.Guests = guestFunc(func(_ context.Context, matrixUser string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		issued = append(issued, matrixUser)
		if matrixUser == "@mallory:localhost" {
			return "", errors.New("guest refused")
		}
		return "guest-token-for-" + matrixUser, nil
	})
	b, err := New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	alice := hs.User(ctx, "alice")
	token, err := alice.RequestOpenIDToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if token.MatrixServerName != testServerName {
		t.Fatalf("Dendrite's OpenID token names server %q", token.MatrixServerName)
	}
	mallory := hs.User(ctx, "mallory")
	malloryToken, err := mallory.RequestOpenIDToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bobToken, err := hs.User(ctx, "bob").RequestOpenIDToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Alice and Mallory are in the portal room of a conference; Bob is in
	// none.
	linkPortal(t, b, e, "conf-1", alice, mallory)

	cases := []struct {
		name       string
		method     string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"real token", http.MethodPost, `{"access_token":"` + token.AccessToken + `","matrix_server_name":"localhost"}`,
			http.StatusOK, `{"token":"guest-token-for-@alice:localhost","user":"@alice:localhost"}`},
		{"forged token", http.MethodPost, `{"access_token":"forged-` + token.AccessToken + `","matrix_server_name":"localhost"}`,
			http.StatusUnauthorized, `{"error":{"code":"unauthorized","message":"the Matrix OpenID token is invalid or expired; request a new one from your homeserver"}}`},
		{"unknown token", http.MethodPost, `{"access_token":"AAAAAAAAAAAAAAAAAAAAAAAA","matrix_server_name":"localhost"}`,
			http.StatusUnauthorized, `{"error":{"code":"unauthorized","message":"the Matrix OpenID token is invalid or expired; request a new one from your homeserver"}}`},
		{"other homeserver", http.MethodPost, `{"access_token":"` + token.AccessToken + `","matrix_server_name":"matrix.org"}`,
			http.StatusForbidden, `{"error":{"code":"forbidden","message":"this node does not accept Matrix users of \"matrix.org\""}}`},
		{"no token", http.MethodPost, `{"matrix_server_name":"localhost"}`,
			http.StatusBadRequest, `{"error":{"code":"bad_request","message":"access_token and matrix_server_name are required"}}`},
		{"unknown field", http.MethodPost, `{"access_token":"x","matrix_server_name":"localhost","admin":true}`,
			http.StatusBadRequest, `{"error":{"code":"bad_request","message":"body must be {\"access_token\": …, \"matrix_server_name\": …}"}}`},
		{"GET", http.MethodGet, ``,
			http.StatusMethodNotAllowed, `{"error":{"code":"bad_request","message":"use POST"}}`},
		{"in no portal room", http.MethodPost, `{"access_token":"` + bobToken.AccessToken + `","matrix_server_name":"localhost"}`,
			http.StatusForbidden, `{"error":{"code":"forbidden","message":"@bob:localhost is in no Matrix room of a conference of this node; ask the conference's moderators to invite you to its room"}}`},
		{"guest refused by the node", http.MethodPost, `{"access_token":"` + malloryToken.AccessToken + `","matrix_server_name":"localhost"}`,
			http.StatusInternalServerError, `{"error":{"code":"internal","message":"could not issue a guest token"}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(ctx, tc.method, "/api/v1/matrix/openid", strings.NewReader(tc.body))
			rec := httptest.NewRecorder()
			b.OpenIDLogin(rec, req)
			if rec.Code != tc.wantStatus || strings.TrimSpace(rec.Body.String()) != tc.wantBody {
				t.Errorf("status %d, body %s; want %d, %s", rec.Code, rec.Body.String(), tc.wantStatus, tc.wantBody)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"@alice:localhost", "@mallory:localhost"}; !slices.Equal(issued, want) {
		t.Errorf("IssueGuest called for %v, want %v", issued, want)
	}
}

// linkPortal makes a room of owner, with members joined, the portal of
// conference.
func linkPortal(t *testing.T, b *Bridge, e *env, conference string, owner *mautrix.Client, members ...*mautrix.Client) id.RoomID {
	t.Helper()
	ctx := t.Context()
	e.confs.set(Conference{ID: conference, Title: "Budget"})
	room, err := owner.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat",
		// The bot administers the room with its owner, as the bridge needs.
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{owner.UserID: 100, b.botUser(): 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: b.botUser()}); err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if _, err := owner.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: m.UserID}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.LinkRoom(ctx, conference, room.RoomID.String()); err != nil {
		t.Fatal(err)
	}
	return room.RoomID
}

func TestOpenIDLoginHomeserverDown(t *testing.T) {
	e := newEnv(t)
	e.opts.OpenIDServerName = testServerName
	e.opts.OpenIDBaseURL = "http://" + freeAddr(t)
	e.opts.Guests = guestFunc(func(context.Context, string) (string, error) {
		t.Error("IssueGuest called without a verified token")
		return "", nil
	})
	b, err := New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/api/v1/matrix/openid",
		strings.NewReader(`{"access_token":"secret-token","matrix_server_name":"localhost"}`))
	rec := httptest.NewRecorder()
	b.OpenIDLogin(rec, req)
	want := `{"error":{"code":"internal","message":"the Matrix homeserver could not be asked about the token"}}`
	if rec.Code != http.StatusBadGateway || strings.TrimSpace(rec.Body.String()) != want {
		t.Errorf("status %d, body %s; want 502, %s", rec.Code, rec.Body.String(), want)
	}
}

func TestOpenIDLoginDisabled(t *testing.T) {
	e := newEnv(t)
	e.opts.Guests = guestFunc(func(context.Context, string) (string, error) { return "t", nil })
	b, err := New(e.opts) // no openid_server_name
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/api/v1/matrix/openid",
		strings.NewReader(`{"access_token":"secret-token","matrix_server_name":"localhost"}`))
	rec := httptest.NewRecorder()
	b.OpenIDLogin(rec, req)
	want := `{"error":{"code":"forbidden","message":"Matrix sign-in is not enabled on this node"}}`
	if rec.Code != http.StatusForbidden || strings.TrimSpace(rec.Body.String()) != want {
		t.Errorf("status %d, body %s; want 403, %s", rec.Code, rec.Body.String(), want)
	}
}

// A token past its lifetime is refused like a forged one; the same token
// was accepted while it was valid.
func TestOpenIDLoginRefusesAnExpiredToken(t *testing.T) {
	e := newEnv(t)
	const lifetime = 3 * time.Second
	hs := dendritetest.Start(t, e.writeRegistration(t), dendritetest.OpenIDTokenLifetime(lifetime))
	e.opts.HomeserverURL = hs.URL
	e.opts.OpenIDServerName = testServerName
	e.opts.OpenIDBaseURL = hs.URL
	e.opts.Guests = guestFunc(func(_ context.Context, matrixUser string) (string, error) {
		return "guest-token-for-" + matrixUser, nil
	})
	b, err := New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	alice := hs.User(ctx, "alice")
	linkPortal(t, b, e, "conf-1", alice)
	token, err := alice.RequestOpenIDToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	issued := time.Now()
	login := func() (int, string) {
		body := `{"access_token":"` + token.AccessToken + `","matrix_server_name":"localhost"}`
		rec := httptest.NewRecorder()
		b.OpenIDLogin(rec, httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/matrix/openid", strings.NewReader(body)))
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	if code, body := login(); code != http.StatusOK {
		t.Fatalf("fresh token: %d %s", code, body)
	}
	time.Sleep(time.Until(issued.Add(lifetime + time.Second)))
	code, body := login()
	want := `{"error":{"code":"unauthorized","message":"the Matrix OpenID token is invalid or expired; request a new one from your homeserver"}}`
	if code != http.StatusUnauthorized || body != want {
		t.Fatalf("expired token: %d %s", code, body)
	}
}

// guestFunc lets a test issue guests with a function.
type guestFunc func(ctx context.Context, matrixUser string) (string, error)

func (f guestFunc) IssueGuest(ctx context.Context, matrixUser string) (string, error) {
	return f(ctx, matrixUser)
}
