package accounts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/store"
)

const goodPassword = "correct horse battery"

func openStore(t *testing.T) store.Store {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "entente.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// withAlice is a store with user alice whose password is goodPassword.
func withAlice(t *testing.T) store.Store {
	t.Helper()
	s := openStore(t)
	ctx := context.Background()
	if _, err := accounts.AddUser(ctx, s, "alice", "Alice Martin", false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := accounts.SetPassword(ctx, s, "alice", goodPassword); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSetPasswordRefuses(t *testing.T) {
	s := withAlice(t)
	for _, tc := range []struct {
		name, user, password, want string
	}{
		{"too short", "alice", "nine char", "password of 9 characters: use at least 10"},
		{"too long for bcrypt", "alice", strings.Repeat("x", 73), "password of 73 bytes: use at most 72"},
		{"unknown user", "bob", goodPassword, `no user "bob" (add it with "entente users add")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := accounts.SetPassword(context.Background(), s, tc.user, tc.password)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// Ten accented characters are more than ten bytes but are enough.
	if err := accounts.SetPassword(context.Background(), s, "alice", "éééééééééé"); err != nil {
		t.Fatalf("ten accented characters: %v", err)
	}
}

func TestLogin(t *testing.T) {
	s := withAlice(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	token, err := accounts.Login(ctx, s, "alice", goodPassword, now)
	if err != nil {
		t.Fatal(err)
	}
	auth := accounts.Authenticator{Store: s, Now: func() time.Time { return now.Add(accounts.LoginTokenTTL - time.Second) }}
	u, err := auth.User(ctx, token)
	if err != nil || u.ID != "alice" || u.DisplayName != "Alice Martin" {
		t.Fatalf("token's user = %+v, %v; want alice", u, err)
	}
	auth.Now = func() time.Time { return now.Add(accounts.LoginTokenTTL) }
	if _, err := auth.User(ctx, token); err == nil {
		t.Fatal("token still valid after 12 h")
	}

	for _, tc := range []struct{ name, user, password string }{
		{"wrong password", "alice", "wrong horse battery"},
		{"unknown user", "nobody", goodPassword},
		{"invalid user name", "../alice", goodPassword},
		{"empty password", "alice", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := accounts.Login(ctx, s, tc.user, tc.password, now)
			if !errors.Is(err, accounts.ErrSignIn) || tok != "" {
				t.Fatalf("Login = %q, %v; want ErrSignIn", tok, err)
			}
		})
	}

	// A user without a password cannot sign in with any.
	if _, err := accounts.AddUser(ctx, s, "bruno", "", false, now); err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.Login(ctx, s, "bruno", "", now); !errors.Is(err, accounts.ErrSignIn) {
		t.Fatalf("user without password: err = %v, want ErrSignIn", err)
	}
}

func post(t *testing.T, h http.Handler, remote, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(body))
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer %q: %v", rec.Body.String(), err)
	}
	return rec.Code, out
}

func TestLoginHandler(t *testing.T) {
	s := withAlice(t)
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	h := accounts.NewLoginHandler(s, func() time.Time { return now }, nil)
	const office, home = "192.0.2.10:50000", "198.51.100.7:40000"
	good := `{"user":"alice","password":"` + goodPassword + `"}`
	bad := `{"user":"alice","password":"wrong horse battery"}`
	generic := map[string]any{"error": map[string]any{"code": "unauthorized", "message": "the user name or password is incorrect"}}

	code, out := post(t, h, office, good)
	if tok, _ := out["token"].(string); code != 200 || !strings.HasPrefix(tok, "ent_") {
		t.Fatalf("good password: %d %v", code, out)
	}
	for _, body := range []string{bad, `{"user":"nobody","password":"whatever123"}`} {
		code, out := post(t, h, home, body)
		if code != 401 || !equalJSON(out, generic) {
			t.Fatalf("%s: %d %v; want 401 %v", body, code, out, generic)
		}
	}
	if code, _ := post(t, h, office, `{"user":"alice","password":"x","remember":true}`); code != 400 {
		t.Fatalf("unknown field: %d, want 400", code)
	}

	// Nine more failures from the office make ten: the good password is
	// now refused from there, but not from elsewhere.
	for range 10 {
		if code, _ := post(t, h, office, bad); code != 401 {
			t.Fatalf("failure: %d, want 401", code)
		}
	}
	code, out = post(t, h, office, good)
	if code != 429 || out["error"].(map[string]any)["code"] != "too_many_requests" {
		t.Fatalf("after 10 failures: %d %v; want 429", code, out)
	}
	if code, _ := post(t, h, home, good); code != 200 {
		t.Fatalf("other address: %d, want 200", code)
	}
	now = now.Add(10*time.Minute + time.Second)
	if code, _ := post(t, h, office, good); code != 200 {
		t.Fatalf("after the window: %d, want 200", code)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// A flood of made-up user names fills the table of failed sign-ins; it must
// not push out, and so reset, the count of a user under attack. Once the
// table is full, names it does not track are refused instead.
func TestLoginThrottleSurvivesFloodOfNames(t *testing.T) {
	s := withAlice(t)
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	h := accounts.NewLoginHandler(s, func() time.Time { return now }, nil)
	h.SetFailureCapacity(8)
	const attacker, other = "203.0.113.5:1000", "198.51.100.7:40000"
	good := `{"user":"alice","password":"` + goodPassword + `"}`
	bad := `{"user":"alice","password":"wrong horse battery"}`
	limited := map[string]any{"code": "too_many_requests", "message": "too many failed sign-ins: try again in a few minutes"}
	full := map[string]any{"code": "too_many_requests", "message": "too many failed sign-ins on this node: try again in a few minutes"}
	errorOf := func(out map[string]any) map[string]any {
		e, _ := out["error"].(map[string]any)
		delete(e, "request_id")
		return e
	}

	for i := range 9 {
		if code, _ := post(t, h, attacker, bad); code != 401 {
			t.Fatalf("failure %d on alice: %d, want 401", i+1, code)
		}
	}
	// Alice's entry and seven invented names fill the table of eight; the
	// next invented names find it full.
	for i := range 20 {
		body := fmt.Sprintf(`{"user":"nobody%d","password":"whatever123"}`, i)
		code, out := post(t, h, attacker, body)
		switch {
		case i < 7 && code != 401:
			t.Fatalf("invented name %d: %d %v, want 401", i, code, out)
		case i >= 7 && (code != 429 || !equalJSON(errorOf(out), full)):
			t.Fatalf("invented name %d with the table full: %d %v, want 429 %v", i, code, out, full)
		}
	}
	// Alice's count survived the flood: one more failure makes ten, and
	// then even her password is refused from that address.
	if code, out := post(t, h, attacker, bad); code != 401 {
		t.Fatalf("tenth failure on alice: %d %v, want 401", code, out)
	}
	if code, out := post(t, h, attacker, good); code != 429 || !equalJSON(errorOf(out), limited) {
		t.Fatalf("alice after ten failures and a flood: %d %v, want 429 %v", code, out, limited)
	}
	// A name and address with no entry waits while the table is full...
	if code, out := post(t, h, other, good); code != 429 || !equalJSON(errorOf(out), full) {
		t.Fatalf("alice elsewhere with the table full: %d %v, want 429 %v", code, out, full)
	}
	// ...and everyone signs in again once the failures expire.
	now = now.Add(10*time.Minute + time.Second)
	for _, addr := range []string{attacker, other} {
		if code, out := post(t, h, addr, good); code != 200 {
			t.Fatalf("alice from %s after the window: %d %v, want 200", addr, code, out)
		}
	}
}
