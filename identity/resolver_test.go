package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// peerServer is a real HTTPS node serving a DID document for its own
// did:web (which depends on the port, hence known only after start).
type peerServer struct {
	srv     *httptest.Server
	did     string
	fetches atomic.Int64

	mu   sync.Mutex
	serv func(w http.ResponseWriter, r *http.Request, did string)
}

func newPeerServer(t *testing.T, pki *testPKI, kr *Keyring) *peerServer {
	t.Helper()
	ps := &peerServer{}
	ps.srv = pki.serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/did.json" {
			http.NotFound(w, r)
			return
		}
		ps.fetches.Add(1)
		ps.mu.Lock()
		serv, did := ps.serv, ps.did
		ps.mu.Unlock()
		serv(w, r, did)
	}))
	ps.mu.Lock()
	ps.did = didOf(t, ps.srv)
	ps.serv = func(w http.ResponseWriter, r *http.Request, did string) {
		kr.DocumentHandler(did, ps.endpoint()).ServeHTTP(w, r)
	}
	ps.mu.Unlock()
	return ps
}

func (ps *peerServer) endpoint() string { return ps.srv.URL + "/federation" }

// serveBody replaces the document with a fixed body built from the DID.
func (ps *peerServer) serveBody(body func(did string) string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.serv = func(w http.ResponseWriter, _ *http.Request, did string) {
		w.Header().Set("Content-Type", "application/did+json")
		_, _ = w.Write([]byte(body(did)))
	}
}

func (ps *peerServer) serveFunc(f func(w http.ResponseWriter, r *http.Request, did string)) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.serv = f
}

func newTestResolver(pki *testPKI, clock *fakeClock, log *slog.Logger) *Resolver {
	return NewResolver(ResolverOptions{
		Client:       pki.client(),
		AllowPrivate: true,
		Now:          clock.Now,
		Logger:       log,
	})
}

func newPeerKeyring(t *testing.T) *Keyring {
	t.Helper()
	kr, err := GenerateKeyring(context.Background(), &failingStorage{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestResolveThenVerifySignature(t *testing.T) {
	pki := newTestPKI(t)
	kr := newPeerKeyring(t)
	ps := newPeerServer(t, pki, kr)
	clock := &fakeClock{now: t0}
	r := newTestResolver(pki, clock, nil)

	payload := []byte(`{"type":"invite","conference":"c-1"}`)
	keyID, sig, err := kr.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := r.Resolve(context.Background(), ps.did)
	if err != nil {
		t.Fatal(err)
	}
	if peer.DID != ps.did || peer.FederationEndpoint != ps.endpoint() || !peer.FetchedAt.Equal(t0) || len(peer.Keys) != 1 {
		t.Fatalf("peer %+v", peer)
	}
	pub, err := peer.Key(ps.did + "#" + keyID)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.HashAndVerify(payload, sig); err != nil {
		t.Errorf("signature does not verify with the resolved key: %v", err)
	}
	if err := pub.HashAndVerify(append(payload, ' '), sig); err == nil {
		t.Error("signature verifies for a changed payload")
	}
}

func TestResolveCachesForTTL(t *testing.T) {
	pki := newTestPKI(t)
	ps := newPeerServer(t, pki, newPeerKeyring(t))
	clock := &fakeClock{now: t0}
	r := newTestResolver(pki, clock, nil)
	ctx := context.Background()

	steps := []struct {
		advance time.Duration
		fetches int64
	}{
		{0, 1},
		{0, 1},
		{5*time.Minute - time.Second, 1},
		{time.Second, 2}, // TTL reached
		{time.Minute, 2},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		if _, err := r.Resolve(ctx, ps.did); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := ps.fetches.Load(); got != s.fetches {
			t.Fatalf("step %d: %d fetches, want %d", i, got, s.fetches)
		}
	}

	r.Forget(ps.did)
	if _, err := r.Resolve(ctx, ps.did); err != nil {
		t.Fatal(err)
	}
	if got := ps.fetches.Load(); got != 3 {
		t.Errorf("after Forget: %d fetches, want 3", got)
	}
}

func TestResolveConcurrentCallersShareOneFetch(t *testing.T) {
	pki := newTestPKI(t)
	kr := newPeerKeyring(t)
	ps := newPeerServer(t, pki, kr)
	gate := make(chan struct{})
	ps.serveFunc(func(w http.ResponseWriter, r *http.Request, did string) {
		<-gate
		kr.DocumentHandler(did, ps.endpoint()).ServeHTTP(w, r)
	})
	r := newTestResolver(pki, &fakeClock{now: t0}, nil)

	const callers = 8
	var wg sync.WaitGroup
	peers := make([]*Peer, callers)
	errs := make([]error, callers)
	var started atomic.Int64
	for i := range callers {
		wg.Go(func() {
			started.Add(1)
			peers[i], errs[i] = r.Resolve(context.Background(), ps.did)
		})
	}
	// Hold the first fetch until every caller has started, so that the
	// others find it in flight rather than a cached result.
	for range 500 {
		if started.Load() == callers && ps.fetches.Load() == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(gate)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || peers[i] != peers[0] {
			t.Fatalf("caller %d: %v (peer %p, first %p)", i, errs[i], peers[i], peers[0])
		}
	}
	if got := ps.fetches.Load(); got != 1 {
		t.Errorf("%d fetches, want 1", got)
	}
}

func TestRefreshIsRateLimited(t *testing.T) {
	pki := newTestPKI(t)
	kr := newPeerKeyring(t)
	ps := newPeerServer(t, pki, kr)
	clock := &fakeClock{now: t0}
	r := newTestResolver(pki, clock, nil)
	ctx := context.Background()

	first, err := r.Resolve(ctx, ps.did)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := kr.Rotate(ctx, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// A flood of messages naming the new key within 10 s costs no fetch.
	for i := range 20 {
		clock.Advance(400 * time.Millisecond)
		p, err := r.Refresh(ctx, ps.did)
		if err != nil || p != first {
			t.Fatalf("refresh %d: %v, got a new peer %v", i, err, p != first)
		}
		if _, err := p.Key("#" + fresh.ID); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("refresh %d: key %s already known: %v", i, fresh.ID, err)
		}
	}
	if got := ps.fetches.Load(); got != 1 {
		t.Fatalf("%d fetches within 10 s, want 1", got)
	}
	clock.Advance(2 * time.Second) // 10 s since the first fetch
	p, err := r.Refresh(ctx, ps.did)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Key("#" + fresh.ID); err != nil {
		t.Errorf("after refresh: %v", err)
	}
	if got := ps.fetches.Load(); got != 2 {
		t.Errorf("%d fetches, want 2", got)
	}
	if again, err := r.Refresh(ctx, ps.did); err != nil || again != p || ps.fetches.Load() != 2 {
		t.Errorf("immediate second refresh fetched again (%d fetches, %v)", ps.fetches.Load(), err)
	}
}

func TestResolveFailureIsNotRetriedAtOnce(t *testing.T) {
	pki := newTestPKI(t)
	ps := newPeerServer(t, pki, newPeerKeyring(t))
	ps.serveFunc(func(w http.ResponseWriter, _ *http.Request, _ string) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	clock := &fakeClock{now: t0}
	r := newTestResolver(pki, clock, nil)
	ctx := context.Background()

	steps := []struct {
		advance time.Duration
		fetches int64
	}{{0, 1}, {9 * time.Second, 1}, {time.Second, 2}}
	for i, s := range steps {
		clock.Advance(s.advance)
		_, err := r.Resolve(ctx, ps.did)
		var re *ResolveError
		if !errors.As(err, &re) || re.Reason != "unexpected HTTP status" {
			t.Fatalf("step %d: %v", i, err)
		}
		if _, err := r.Refresh(ctx, ps.did); !errors.As(err, &re) {
			t.Fatalf("step %d refresh: %v", i, err)
		}
		if got := ps.fetches.Load(); got != s.fetches {
			t.Fatalf("step %d: %d fetches, want %d", i, got, s.fetches)
		}
	}
}

func TestResolveRefusals(t *testing.T) {
	pki := newTestPKI(t)
	f := newDocFixture(t)
	var otherHits atomic.Int64
	other := pki.serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherHits.Add(1) }))

	validDoc := func(endpoint string) func(did string) string {
		return func(did string) string {
			return doc(did, []string{vm(did+"#k-1", did, f.p256)}, []string{svc("#entente_federation", "EntenteFederation", endpoint)})
		}
	}
	cases := []struct {
		name           string
		serve          func(ps *peerServer)
		resolverOpts   func(o *ResolverOptions)
		reason, detail string
		is             error
	}{
		{name: "malformed JSON", serve: func(ps *peerServer) { ps.serveBody(func(string) string { return `{"id":` }) },
			reason: "malformed JSON", detail: "unexpected EOF"},
		{name: "oversized document", serve: func(ps *peerServer) {
			ps.serveBody(func(did string) string { return `{"id":"` + did + `","pad":"` + strings.Repeat("a", 2000) + `"}` })
		}, resolverOpts: func(o *ResolverOptions) { o.MaxDocumentBytes = 1024 },
			reason: "document too large", detail: "more than 1024 bytes"},
		{name: "wrong id", serve: func(ps *peerServer) {
			ps.serveBody(func(string) string { return validDoc("https://x.gov/f")("did:web:evil.example") })
		}, reason: "id does not match", detail: `document id is "did:web:evil.example"`},
		{name: "wrong controller", serve: func(ps *peerServer) {
			ps.serveBody(func(did string) string {
				return doc(did, []string{vm(did+"#k-1", "did:web:evil.example", f.p256)}, []string{svc("#entente_federation", "EntenteFederation", "https://x.gov/f")})
			})
		}, reason: "wrong controller"},
		{name: "K-256 key only", serve: func(ps *peerServer) {
			ps.serveBody(func(did string) string {
				return doc(did, []string{vm(did+"#k-1", did, f.k256)}, []string{svc("#entente_federation", "EntenteFederation", "https://x.gov/f")})
			})
		}, reason: "no P-256 key"},
		{name: "missing service", serve: func(ps *peerServer) {
			ps.serveBody(func(did string) string { return doc(did, []string{vm(did+"#k-1", did, f.p256)}, nil) })
		}, reason: "no federation service"},
		{name: "http service endpoint", serve: func(ps *peerServer) { ps.serveBody(validDoc("http://x.gov/f")) },
			reason: "federation endpoint refused", detail: `endpoint "http://x.gov/f": scheme must be https`},
		{name: "private service endpoint", serve: func(ps *peerServer) { ps.serveBody(validDoc("https://169.254.169.254/f")) },
			resolverOpts: func(o *ResolverOptions) { o.AllowPrivate = false },
			reason:       "federation endpoint refused", is: ErrPrivateAddress},
		{name: "not found", serve: func(ps *peerServer) {
			ps.serveFunc(func(w http.ResponseWriter, r *http.Request, _ string) { http.NotFound(w, r) })
		}, reason: "unexpected HTTP status"},
		{name: "redirect to another host", serve: func(ps *peerServer) {
			ps.serveFunc(func(w http.ResponseWriter, r *http.Request, _ string) {
				http.Redirect(w, r, other.URL+"/.well-known/did.json", http.StatusFound)
			})
		}, reason: "fetch failed", is: ErrRedirectRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := newPeerServer(t, pki, newPeerKeyring(t))
			tc.serve(ps)
			var logs bytes.Buffer
			opts := ResolverOptions{
				Client:       pki.client(),
				AllowPrivate: true,
				Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
			}
			if tc.resolverOpts != nil {
				tc.resolverOpts(&opts)
			}
			peer, err := NewResolver(opts).Resolve(context.Background(), ps.did)
			var re *ResolveError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, %v; want *ResolveError", peer, err)
			}
			if re.DID != ps.did || re.Reason != tc.reason {
				t.Fatalf("got %v; want reason %q", err, tc.reason)
			}
			if tc.detail != "" && (re.Err == nil || re.Err.Error() != tc.detail) {
				t.Errorf("detail %v, want %q", re.Err, tc.detail)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v does not wrap %v", err, tc.is)
			}
			wantLog := fmt.Sprintf(`level=WARN msg="peer DID document refused" peer=%s reason=%q`, ps.did, tc.reason)
			if !strings.Contains(logs.String(), wantLog) {
				t.Errorf("log %q lacks %q", logs.String(), wantLog)
			}
		})
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("redirect target saw %d requests", n)
	}
}

func TestResolveUnreachableAndInvalidDIDs(t *testing.T) {
	pki := newTestPKI(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		did, reason, detail string
		private             bool
	}{
		{did: fmt.Sprintf("did:web:127.0.0.1%%3A%d", closedPort), reason: "fetch failed"},
		{did: "did:plc:ewvi7nxzyoun6zhxrhs64oiz", reason: "not a did:web DID"},
		{did: "did:web:Bad_Host", reason: "invalid did:web",
			detail: `DID "did:web:Bad_Host": host "Bad_Host": character '_' not allowed`},
	}
	for _, tc := range cases {
		t.Run(tc.did, func(t *testing.T) {
			r := newTestResolver(pki, &fakeClock{now: t0}, nil)
			_, err := r.Resolve(context.Background(), tc.did)
			var re *ResolveError
			if !errors.As(err, &re) || re.Reason != tc.reason {
				t.Fatalf("got %v, want reason %q", err, tc.reason)
			}
			if tc.detail != "" && (re.Err == nil || re.Err.Error() != tc.detail) {
				t.Errorf("detail %v, want %q", re.Err, tc.detail)
			}
		})
	}

	// Without AllowPrivate in the client the loopback peer is refused at
	// the dialer, before any connection.
	ps := newPeerServer(t, pki, newPeerKeyring(t))
	r := NewResolver(ResolverOptions{Client: NewHTTPClient(ClientOptions{RootCAs: pki.pool})})
	_, err = r.Resolve(context.Background(), ps.did)
	if !errors.Is(err, ErrPrivateAddress) || ps.fetches.Load() != 0 {
		t.Errorf("got %v with %d fetches, want ErrPrivateAddress and none", err, ps.fetches.Load())
	}
}

func TestResolveFollowsSameOriginRedirect(t *testing.T) {
	pki := newTestPKI(t)
	kr := newPeerKeyring(t)
	ps := newPeerServer(t, pki, kr)
	mux := http.NewServeMux()
	var did string
	srv := pki.serve(t, mux)
	did = didOf(t, srv)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	mux.HandleFunc("/.well-known/did.json", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://"+u.Host+"/moved/did.json", http.StatusMovedPermanently)
	})
	mux.Handle("/moved/did.json", kr.DocumentHandler(did, ps.endpoint()))
	peer, err := newTestResolver(pki, &fakeClock{now: t0}, nil).Resolve(context.Background(), did)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Key("#" + kr.CurrentID()); err != nil {
		t.Error(err)
	}
}
