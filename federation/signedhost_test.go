package federation

import (
	"net/http"
	"strings"
	"testing"
)

// TestCanonicalAuthority pins the host comparison of spec §3.2 step 4.
func TestCanonicalAuthority(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"visio.ministry.example", "visio.ministry.example"},
		{"Visio.Ministry.EXAMPLE", "visio.ministry.example"},
		{"visio.ministry.example:443", "visio.ministry.example"},
		{"visio.ministry.example:8443", "visio.ministry.example:8443"},
		{"visio.ministry.example:0443", "visio.ministry.example:0443"},
		{"visio.ministry.example.", "visio.ministry.example."},
		{"127.0.0.1:8441", "127.0.0.1:8441"},
	} {
		if got := CanonicalAuthority(c.in); got != c.want {
			t.Errorf("CanonicalAuthority(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, c := range []struct{ publicURL, did, want string }{
		{"https://Visio.Ministry.example", "", "visio.ministry.example"},
		{"https://visio.ministry.example:443", "", "visio.ministry.example"},
		{"", "did:web:visio.ministry.example%3A8441", "visio.ministry.example:8441"},
	} {
		if got, err := ownAuthority(c.publicURL, c.did); err != nil || got != c.want {
			t.Errorf("ownAuthority(%q, %q) = %q, %v, want %q", c.publicURL, c.did, got, err, c.want)
		}
	}
}

// TestAuthenticateSignedHostCaseAndPort: the signed host is compared as
// spec §3.2 step 4 says: case and an explicit :443 do not matter, any other
// difference does.
func TestAuthenticateSignedHostCaseAndPort(t *testing.T) {
	f := newAuthFixture(t)
	// The receiver answers to visio.ministry.example (default port) for
	// this test; the requests still reach it on its loopback address.
	f.receiver.auth.Host = "visio.ministry.example"
	for _, c := range []struct {
		host   string
		status int
	}{
		{"visio.ministry.example", http.StatusNoContent},
		{"VISIO.Ministry.Example", http.StatusNoContent},
		{"visio.ministry.example:443", http.StatusNoContent},
		{"visio.ministry.example:8443", http.StatusUnauthorized},
		{"visio.ministry.example.", http.StatusUnauthorized},
		{"agency.example", http.StatusUnauthorized},
	} {
		req := f.receiver.newRequest(t, http.MethodPost, inboxPath, testBody)
		req.Host = c.host
		if err := SignRequest(req, testBody, f.keyID, f.priv, f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		before := len(f.receiver.received())
		status, detail := f.receiver.send(t, req)
		if status != c.status {
			t.Errorf("signed for %q: %d %+v, want %d", c.host, status, detail, c.status)
		}
		if c.status != http.StatusNoContent && (detail.Code != "unauthorized" || !strings.Contains(detail.Message, "request signed for host") || len(f.receiver.received()) != before) {
			t.Errorf("signed for %q: %+v, or it reached the handler", c.host, detail)
		}
	}
}
