package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrPrivateAddress is wrapped in the error of any request or endpoint that
// would reach a loopback, private, link-local or otherwise internal address.
var ErrPrivateAddress = errors.New("non-public address refused")

// ErrRedirectRefused is wrapped in the error of a request whose redirect
// leaves the original origin, downgrades to http, or chains too long.
var ErrRedirectRefused = errors.New("redirect refused")

const (
	defaultClientTimeout = 10 * time.Second
	dialTimeout          = 5 * time.Second
	tlsHandshakeTimeout  = 5 * time.Second
	responseHeaderWait   = 5 * time.Second
	maxRedirects         = 3
	maxResponseHeaders   = 64 << 10
	// h2PingAfter and h2PingTimeout are the HTTP/2 health check: a
	// connection on which nothing arrived for h2PingAfter is pinged, and
	// closed when the ping is not answered within h2PingTimeout. Without
	// it a connection whose path went dead silently (a partition, a NAT
	// that forgot it) stays in the pool, and every request to that peer is
	// sent into it until the kernel gives up, minutes later; with it, a dead
	// connection is gone 10 s after it fell silent, and the first retry
	// after the network heals dials afresh (spec/federation.md §8).
	h2PingAfter   = 5 * time.Second
	h2PingTimeout = 5 * time.Second
)

// ClientOptions configures NewHTTPClient.
type ClientOptions struct {
	// AllowPrivate lifts the address guard, only for explicitly local
	// federations such as the demo.
	AllowPrivate bool
	// RootCAs verifies peers' certificates; nil means the system roots.
	RootCAs *x509.CertPool
	// Timeout bounds a whole request; zero means 10 s.
	Timeout time.Duration
}

// NewHTTPClient returns the client every outbound request to a peer must use.
// The address guard runs in the dialer's Control hook, on the IP actually
// being connected to, so a DNS name that resolves (or later rebinds) to an
// internal address is refused before any packet is sent.
func NewHTTPClient(opts ClientOptions) *http.Client {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultClientTimeout
	}
	dialer := &net.Dialer{
		Timeout:   dialTimeout,
		KeepAlive: 30 * time.Second,
		Control:   dialControl(opts.AllowPrivate),
	}
	transport := &http.Transport{
		// Proxy stays nil: a proxy from the environment would connect on
		// our behalf and bypass the address guard.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs},
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		ResponseHeaderTimeout:  responseHeaderWait,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: maxResponseHeaders,
		ForceAttemptHTTP2:      true,
		// The standard library's names for golang.org/x/net/http2's
		// ReadIdleTimeout and PingTimeout.
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: h2PingAfter,
			PingTimeout:     h2PingTimeout,
		},
	}
	return &http.Client{
		Transport:     transport,
		Timeout:       timeout,
		CheckRedirect: checkRedirect,
	}
}

func dialControl(allowPrivate bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if network != "tcp4" && network != "tcp6" {
			return fmt.Errorf("network %q not allowed", network)
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("unparsable dial address %q: %w", address, err)
		}
		if !allowPrivate && IsPrivateAddress(ap.Addr()) {
			return fmt.Errorf("connect to %s: %w", address, ErrPrivateAddress)
		}
		return nil
	}
}

// checkRedirect keeps redirects on the original scheme, host and port: a
// peer may move its document within its own origin, but must not steer our
// client anywhere else.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("more than %d redirects: %w", maxRedirects, ErrRedirectRefused)
	}
	first := via[0].URL
	if req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to %s URL: %w", req.URL.Scheme, ErrRedirectRefused)
	}
	if req.URL.Scheme != first.Scheme || !strings.EqualFold(originHostPort(req.URL), originHostPort(first)) {
		return fmt.Errorf("redirect from %s to %s: %w", originHostPort(first), originHostPort(req.URL), ErrRedirectRefused)
	}
	return nil
}

func originHostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// CheckEndpoint validates a peer-supplied URL before it is stored or used:
// https only, a host, no userinfo, and IP-literal hosts must be public unless
// allowPrivate. Names are checked again, on their resolved address, when the
// client connects.
func CheckEndpoint(rawURL string, allowPrivate bool) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("endpoint %q: %w", rawURL, err)
	}
	if u.Scheme != "https" {
		return fmt.Errorf("endpoint %q: scheme must be https", rawURL)
	}
	if u.User != nil {
		return fmt.Errorf("endpoint %q: userinfo not allowed", rawURL)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("endpoint %q: no host", rawURL)
	}
	if p := u.Port(); p != "" {
		if _, err := checkPort(p); err != nil {
			return fmt.Errorf("endpoint %q: %w", rawURL, err)
		}
	}
	if allowPrivate {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" || IsPrivateAddress(ip) {
			return fmt.Errorf("endpoint %q: %w", rawURL, ErrPrivateAddress)
		}
		return nil
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if lower == "localhost" || strings.HasSuffix(lower, ".localhost") {
		return fmt.Errorf("endpoint %q: %w", rawURL, ErrPrivateAddress)
	}
	return nil
}

// nonPublicPrefixes are ranges the standard library's predicates do not
// cover but that must not be reachable from peer-supplied URLs.
var nonPublicPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and broadcast
	netip.MustParsePrefix("::/96"),          // IPv4-compatible (deprecated)
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated)
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64: reaches IPv4 behind the gateway
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2002::/16"),      // 6to4: embeds an IPv4 address
}

// IsPrivateAddress reports whether ip is one a peer must never make us
// connect to: loopback, private, link-local (including the cloud metadata
// address 169.254.169.254), unspecified, multicast, CGNAT, unique-local, the
// reserved ranges above, and IPv4-mapped IPv6 forms of any of them.
func IsPrivateAddress(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	ip = ip.Unmap()
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() {
		return true
	}
	for _, p := range nonPublicPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
