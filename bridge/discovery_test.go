package bridge

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/devcert"
)

// Without openid_base_url, the bridge finds the homeserver's federation API
// by Matrix server discovery, as mautrix implements it: the server name's
// /.well-known/matrix/server (fetched from https://<server name>, port 443)
// delegates to another host and port, where the token is checked over TLS.
// Here the server name is Dendrite's "localhost"; port 443 of localhost is
// the well-known server (a dial rule of the test's client, since the test
// may not take the real port), which delegates to a TLS front of Dendrite.
func TestOpenIDServerDiscovery(t *testing.T) {
	e := newEnv(t)
	hs := startHomeserver(t, e.writeRegistration(t))
	e.opts.HomeserverURL = hs.URL
	e.opts.OpenIDServerName = testServerName
	e.opts.Guests = guestFunc(func(_ context.Context, matrixUser string) (string, error) {
		return "guest-token-for-" + matrixUser, nil
	})

	ca, err := devcert.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := devcert.KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	serveTLS := func(h http.Handler) *httptest.Server {
		s := httptest.NewUnstartedServer(h)
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.StartTLS()
		t.Cleanup(s.Close)
		return s
	}
	dendrite, _ := url.Parse(hs.URL)
	var mu sync.Mutex
	var asked []string // host and path of each request the front passed on
	front := serveTLS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Host+" "+r.URL.Path)
		mu.Unlock()
		httputil.NewSingleHostReverseProxy(dendrite).ServeHTTP(w, r)
	}))
	frontAddr := front.Listener.Addr().String()
	wellKnown := serveTLS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/matrix/server" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"m.server":"` + frontAddr + `"}`))
	}))

	client := identity.NewHTTPClient(identity.ClientOptions{AllowPrivate: true, RootCAs: ca.Pool()})
	tr := client.Transport.(*http.Transport)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "localhost:443" {
			addr = wellKnown.Listener.Addr().String()
		}
		return dial(ctx, network, addr)
	}
	e.opts.HTTPClient = client
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
	login := func(accessToken string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/matrix/openid",
			strings.NewReader(`{"access_token":"`+accessToken+`","matrix_server_name":"localhost"}`))
		rec := httptest.NewRecorder()
		b.OpenIDLogin(rec, req)
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	if code, body := login(token.AccessToken); code != http.StatusOK || body != `{"token":"guest-token-for-@alice:localhost","user":"@alice:localhost"}` {
		t.Errorf("sign-in through discovery: %d %s", code, body)
	}
	if code, body := login("forged"); code != http.StatusUnauthorized ||
		body != `{"error":{"code":"unauthorized","message":"the Matrix OpenID token is invalid or expired; request a new one from your homeserver"}}` {
		t.Errorf("forged token through discovery: %d %s", code, body)
	}
	mu.Lock()
	defer mu.Unlock()
	want := frontAddr + " /_matrix/federation/v1/openid/userinfo"
	if len(asked) != 2 || asked[0] != want || asked[1] != want {
		t.Errorf("requests at the delegated host: %q, want twice %q", asked, want)
	}
}
