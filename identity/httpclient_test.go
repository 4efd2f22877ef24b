package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestIsPrivateAddress(t *testing.T) {
	cases := []struct {
		ip      string
		private bool
	}{
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"10.0.0.1", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		{"169.254.169.254", true},
		{"fe80::1", true},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"::", true},
		{"224.0.0.1", true},
		{"ff02::1", true},
		{"100.64.0.1", true},
		{"100.127.255.255", true},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		{"255.255.255.255", true},
		{"64:ff9b::a00:1", true},
		{"2002:7f00:1::", true},
		{"::127.0.0.1", true},
		{"8.8.8.8", false},
		{"172.32.0.1", false},
		{"100.128.0.1", false},
		{"193.51.24.1", false},
		{"2a01:e0a::1", false},
		{"::ffff:8.8.8.8", false},
	}
	for _, tc := range cases {
		t.Run(tc.ip, func(t *testing.T) {
			if got := IsPrivateAddress(netip.MustParseAddr(tc.ip)); got != tc.private {
				t.Errorf("IsPrivateAddress(%s) = %v, want %v", tc.ip, got, tc.private)
			}
		})
	}
	if !IsPrivateAddress(netip.Addr{}) {
		t.Error("the zero Addr must count as private")
	}
}

func TestCheckEndpoint(t *testing.T) {
	cases := []struct {
		url          string
		allowPrivate bool
		err          string
		private      bool
	}{
		{url: "https://meet.example.gov/federation"},
		{url: "https://193.51.24.1:8443/federation"},
		{url: "https://127.0.0.1:8441/federation", allowPrivate: true},
		{url: "http://meet.example.gov/federation", err: `endpoint "http://meet.example.gov/federation": scheme must be https`},
		{url: "ftp://meet.example.gov/", err: `endpoint "ftp://meet.example.gov/": scheme must be https`},
		{url: "https:///federation", err: `endpoint "https:///federation": no host`},
		{url: "https://a:b@meet.example.gov/", err: `endpoint "https://a:b@meet.example.gov/": userinfo not allowed`},
		{url: "https://meet.example.gov:70000/", err: `endpoint "https://meet.example.gov:70000/": bad port "70000"`},
		{url: "https://127.0.0.1/", err: `endpoint "https://127.0.0.1/": non-public address refused`, private: true},
		{url: "https://[::1]/", err: `endpoint "https://[::1]/": non-public address refused`, private: true},
		{url: "https://[::ffff:127.0.0.1]/", err: `endpoint "https://[::ffff:127.0.0.1]/": non-public address refused`, private: true},
		{url: "https://169.254.169.254/latest/meta-data", err: `endpoint "https://169.254.169.254/latest/meta-data": non-public address refused`, private: true},
		{url: "https://localhost:8441/", err: `endpoint "https://localhost:8441/": non-public address refused`, private: true},
		{url: "https://[fe80::1%25eth0]/", err: `endpoint "https://[fe80::1%25eth0]/": non-public address refused`, private: true},
		{url: "::not a url", err: `endpoint "::not a url": parse "::not a url": missing protocol scheme`},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			err := CheckEndpoint(tc.url, tc.allowPrivate)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.err {
				t.Fatalf("got %v, want %q", err, tc.err)
			}
			if errors.Is(err, ErrPrivateAddress) != tc.private {
				t.Errorf("errors.Is(ErrPrivateAddress) = %v, want %v", !tc.private, tc.private)
			}
		})
	}
}

func TestNewHTTPClientSettings(t *testing.T) {
	c := NewHTTPClient(ClientOptions{})
	if c.Timeout != 10*time.Second {
		t.Errorf("default timeout %s, want 10s", c.Timeout)
	}
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport is %T", c.Transport)
	}
	if tr.Proxy != nil {
		t.Error("transport takes a proxy from the environment")
	}
	if tr.TLSClientConfig.MinVersion != tls.VersionTLS12 || tr.TLSClientConfig.InsecureSkipVerify {
		t.Errorf("TLS config: min version %x, insecure %v", tr.TLSClientConfig.MinVersion, tr.TLSClientConfig.InsecureSkipVerify)
	}
	if tr.TLSHandshakeTimeout == 0 || tr.ResponseHeaderTimeout == 0 {
		t.Error("handshake or response header timeout missing")
	}
	if got := NewHTTPClient(ClientOptions{Timeout: time.Second}).Timeout; got != time.Second {
		t.Errorf("timeout %s, want 1s", got)
	}
}

func get(ctx context.Context, c *http.Client, rawURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// The guard runs in the dialer's Control hook, so these fail before a
// connection exists: the live loopback server must never see a request, and
// the non-loopback addresses are never contacted at all.
func TestClientRefusesPrivateAddresses(t *testing.T) {
	pki := newTestPKI(t)
	var hits atomic.Int64
	srv := pki.serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	client := NewHTTPClient(ClientOptions{RootCAs: pki.pool, Timeout: 5 * time.Second})
	targets := []string{
		"https://127.0.0.1:" + port + "/",
		"https://localhost:" + port + "/",
		"https://[::1]:" + port + "/",
		"https://[::ffff:127.0.0.1]:" + port + "/",
		"https://169.254.169.254/latest/meta-data/",
		"https://10.0.0.1/",
		"https://100.64.0.1/",
		"https://0.0.0.0:" + port + "/",
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			_, err := get(context.Background(), client, target)
			if !errors.Is(err, ErrPrivateAddress) {
				t.Fatalf("got %v, want ErrPrivateAddress", err)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("loopback server saw %d requests", n)
	}

	// The same server is reachable once private addresses are allowed,
	// which shows the refusals above came from the guard alone.
	body, err := get(context.Background(), pki.client(), srv.URL+"/")
	if err != nil || body != "" || hits.Load() != 1 {
		t.Fatalf("allowed request: %q, %v, %d hits", body, err, hits.Load())
	}
}

func TestClientRefusesUntrustedCertificate(t *testing.T) {
	pki := newTestPKI(t)
	srv := pki.serve(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	other := newTestPKI(t)
	for name, roots := range map[string]*x509.CertPool{"other CA": other.pool, "system roots": nil} {
		t.Run(name, func(t *testing.T) {
			client := NewHTTPClient(ClientOptions{AllowPrivate: true, RootCAs: roots, Timeout: 5 * time.Second})
			_, err := get(context.Background(), client, srv.URL)
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Fatalf("got %v, want an unknown authority error", err)
			}
		})
	}
}

func TestClientRedirects(t *testing.T) {
	pki := newTestPKI(t)
	var otherHits atomic.Int64
	other := pki.serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		_, _ = io.WriteString(w, "other")
	}))
	mux := http.NewServeMux()
	srv := pki.serve(t, mux)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/same", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/other-host", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/", http.StatusFound)
	})
	mux.HandleFunc("/other-name", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://localhost:"+u.Port()+"/ok", http.StatusFound)
	})
	mux.HandleFunc("/http", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+u.Host+"/ok", http.StatusFound)
	})
	// /chain/N redirects to /chain/N+1 until /chain/4.
	mux.HandleFunc("/chain/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n >= 4 {
			_, _ = io.WriteString(w, "end")
			return
		}
		http.Redirect(w, r, "/chain/"+strconv.Itoa(n+1), http.StatusFound)
	})

	client := pki.client()
	cases := []struct {
		path, body string
		refused    bool
	}{
		{path: "/same", body: "ok"},
		{path: "/chain/1", body: "end"}, // three redirects
		{path: "/chain/0", refused: true},
		{path: "/other-host", refused: true},
		{path: "/other-name", refused: true},
		{path: "/http", refused: true},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			body, err := get(context.Background(), client, srv.URL+tc.path)
			if tc.refused {
				if !errors.Is(err, ErrRedirectRefused) {
					t.Fatalf("got %q, %v; want ErrRedirectRefused", body, err)
				}
				return
			}
			if err != nil || body != tc.body {
				t.Fatalf("got %q, %v; want %q", body, err, tc.body)
			}
		})
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("other host saw %d requests", n)
	}
}
