package identity

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/netcut"
)

// A peer's document that cannot be fetched again does not take the good one
// away: the last good document stays in use, past the TTL, until a good one
// replaces it or it is older than the maximum stale age; only then is the
// lookup unavailable, with the time to ask again (spec/identity.md §4).
func TestResolveKeepsLastGoodDocumentUntilMaxStale(t *testing.T) {
	pki := newTestPKI(t)
	kr := newPeerKeyring(t)
	ps := newPeerServer(t, pki, kr)
	good := ps.serv
	var down atomic.Bool
	ps.serveFunc(func(w http.ResponseWriter, r *http.Request, did string) {
		if down.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		good(w, r, did)
	})
	clock := &fakeClock{now: t0}
	r := NewResolver(ResolverOptions{Client: pki.client(), AllowPrivate: true, Now: clock.Now,
		TTL: 5 * time.Minute, MinRefetch: 10 * time.Second, MaxStale: time.Hour})
	ctx := context.Background()

	first, err := r.Resolve(ctx, ps.did)
	if err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	steps := []struct {
		name    string
		advance time.Duration
		fetches int64
	}{
		{"past the TTL the refetch fails: the last good document", 5 * time.Minute, 2},
		{"within the refetch interval: no fetch", 9 * time.Second, 2},
		{"after it: one more failed fetch", time.Second, 3},
		{"just under the maximum stale age", time.Hour - 5*time.Minute - 10*time.Second - time.Millisecond, 4},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		p, err := r.Resolve(ctx, ps.did)
		if err != nil || p != first {
			t.Fatalf("%s: got %v (the first document: %v)", s.name, err, p == first)
		}
		if got := ps.fetches.Load(); got != s.fetches {
			t.Fatalf("%s: %d fetches, want %d", s.name, got, s.fetches)
		}
	}
	// A key the old document lacks cannot be looked up now: unavailable,
	// not unknown.
	_, err = r.Refresh(ctx, ps.did)
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.DID != ps.did || ue.RetryAfter != 10*time.Second {
		t.Fatalf("refresh while the peer is down: %v, want UnavailableError retrying in 10s", err)
	}

	clock.Advance(10 * time.Second) // the document is an hour old
	_, err = r.Resolve(ctx, ps.did)
	var re *ResolveError
	if !errors.As(err, &ue) || ue.RetryAfter != 10*time.Second || !errors.As(err, &re) || re.Reason != "unexpected HTTP status" {
		t.Fatalf("past the maximum stale age: %v, want UnavailableError (unexpected HTTP status) retrying in 10s", err)
	}
	clock.Advance(4 * time.Second)
	if _, err = r.Resolve(ctx, ps.did); !errors.As(err, &ue) || ue.RetryAfter != 6*time.Second {
		t.Fatalf("from the cache: %v, want UnavailableError retrying in 6s", err)
	}
	if got := ps.fetches.Load(); got != 5 {
		t.Fatalf("%d fetches, want 5", got)
	}

	// The peer is back with a new key: the good document replaces the old.
	fresh, err := kr.Rotate(ctx, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	down.Store(false)
	clock.Advance(6 * time.Second)
	p, err := r.Resolve(ctx, ps.did)
	if err != nil || p == first {
		t.Fatalf("after the peer recovered: %v (still the first document: %v)", err, p == first)
	}
	if _, err := p.Key("#" + fresh.ID); err != nil {
		t.Errorf("the new document: %v", err)
	}
}

// A refetch that hangs does not hold a lookup up: after a short wait the last
// good document answers, and the fetch goes on in the background.
func TestResolveDoesNotWaitLongForARefetch(t *testing.T) {
	pki := newTestPKI(t)
	kr := newPeerKeyring(t)
	ps := newPeerServer(t, pki, kr)
	good := ps.serv
	release := make(chan struct{})
	defer close(release)
	var hang atomic.Bool
	ps.serveFunc(func(w http.ResponseWriter, r *http.Request, did string) {
		if hang.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		good(w, r, did)
	})
	clock := &fakeClock{now: t0}
	r := newTestResolver(pki, clock, nil)
	ctx := context.Background()
	first, err := r.Resolve(ctx, ps.did)
	if err != nil {
		t.Fatal(err)
	}
	hang.Store(true)
	clock.Advance(5 * time.Minute)
	done := make(chan struct{})
	var got *Peer
	go func() {
		defer close(done)
		got, err = r.Resolve(ctx, ps.did)
	}()
	select {
	case <-done:
	case <-time.After(4 * time.Second): // less than the client's 5 s timeout
		t.Fatal("the lookup waited for the hanging refetch")
	}
	if err != nil || got != first {
		t.Fatalf("got %v (the first document: %v)", err, got == first)
	}
}

// Which failures are transient (unavailable, to be asked again) and which
// are refusals of the peer's document.
func TestResolveFailureKinds(t *testing.T) {
	pki := newTestPKI(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()

	for _, status := range []int{500, 502, 503, 504, 429, 408, 404, 403, 410} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			ps := newPeerServer(t, pki, newPeerKeyring(t))
			ps.serveFunc(func(w http.ResponseWriter, _ *http.Request, _ string) { http.Error(w, "no", status) })
			_, err := newTestResolver(pki, &fakeClock{now: t0}, nil).Resolve(context.Background(), ps.did)
			var ue *UnavailableError
			if transient := status >= 500 || status == 429 || status == 408; errors.As(err, &ue) != transient {
				t.Fatalf("HTTP %d: %v; want unavailable: %v", status, err, transient)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		_, err := newTestResolver(pki, &fakeClock{now: t0}, nil).Resolve(context.Background(), fmt.Sprintf("did:web:127.0.0.1%%3A%d", closedPort))
		var ue *UnavailableError
		if !errors.As(err, &ue) || ue.RetryAfter != 10*time.Second {
			t.Fatalf("got %v, want UnavailableError retrying in 10s", err)
		}
	})
	t.Run("private address", func(t *testing.T) {
		ps := newPeerServer(t, pki, newPeerKeyring(t))
		_, err := NewResolver(ResolverOptions{Client: NewHTTPClient(ClientOptions{RootCAs: pki.pool})}).Resolve(context.Background(), ps.did)
		var ue *UnavailableError
		if errors.As(err, &ue) || !errors.Is(err, ErrPrivateAddress) {
			t.Fatalf("got %v, want a refusal wrapping ErrPrivateAddress", err)
		}
	})
	t.Run("malformed document", func(t *testing.T) {
		ps := newPeerServer(t, pki, newPeerKeyring(t))
		ps.serveBody(func(string) string { return `{"id":` })
		_, err := newTestResolver(pki, &fakeClock{now: t0}, nil).Resolve(context.Background(), ps.did)
		var ue *UnavailableError
		var re *ResolveError
		if errors.As(err, &ue) || !errors.As(err, &re) || re.Reason != "malformed JSON" {
			t.Fatalf("got %v, want the refusal malformed JSON", err)
		}
	})
}

// Probe fetches whatever the cache and the refetch interval say, keeps a
// good document and leaves the cache alone on failure.
func TestProbe(t *testing.T) {
	pki := newTestPKI(t)
	kr := newPeerKeyring(t)
	ps := newPeerServer(t, pki, kr)
	good := ps.serv
	var down atomic.Bool
	ps.serveFunc(func(w http.ResponseWriter, r *http.Request, did string) {
		if down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		good(w, r, did)
	})
	clock := &fakeClock{now: t0}
	r := newTestResolver(pki, clock, nil)
	ctx := context.Background()
	first, err := r.Resolve(ctx, ps.did)
	if err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	if _, err := r.Probe(ctx, ps.did); err == nil {
		t.Fatal("probe of a peer answering 502 succeeded")
	}
	if p, err := r.Resolve(ctx, ps.did); err != nil || p != first || ps.fetches.Load() != 2 {
		t.Fatalf("after a failed probe: %v, first document %v, %d fetches; want the first and 2", err, p == first, ps.fetches.Load())
	}
	down.Store(false)
	probed, err := r.Probe(ctx, ps.did) // no wait for the refetch interval
	if err != nil || probed == first {
		t.Fatalf("probe: %v (the first document again: %v)", err, probed == first)
	}
	if p, err := r.Resolve(ctx, ps.did); err != nil || p != probed || ps.fetches.Load() != 3 {
		t.Fatalf("after a good probe: %v, probed document %v, %d fetches; want it and 3", err, p == probed, ps.fetches.Load())
	}
}

// An HTTP/2 connection whose path goes silent is pinged, found dead and
// closed by the client itself, so the first request after the network heals
// dials afresh instead of waiting on the dead one (spec/federation.md §8).
func TestHTTPClientClosesSilentHTTP2Connection(t *testing.T) {
	pki := newTestPKI(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s over HTTP/%d", r.URL.Path, r.ProtoMajor)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	cut, err := netcut.Listen(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	c := pki.client()
	ctx := context.Background()
	base := "https://" + cut.Addr()

	if body, err := get(ctx, c, base+"/before"); err != nil || body != "/before over HTTP/2" {
		t.Fatalf("before the cut: %q, %v", body, err)
	}
	cut.Cut()
	// The health check's ping goes unanswered and the client closes the
	// connection: without it, the idle connection would stay for 90 s.
	deadline := time.Now().Add(60 * time.Second)
	for cut.Silenced() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the client kept the silenced HTTP/2 connection for 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cut.Heal()
	if body, err := get(ctx, c, base+"/after"); err != nil || body != "/after over HTTP/2" {
		t.Fatalf("first request after the heal: %q, %v", body, err)
	}
}
