package bridge

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.mau.fi/util/exhttp"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
)

// openIDClient is how the bridge reaches the federation API of the
// homeserver whose users sign in with OpenID (README, "Bridging Matrix").
// By default mautrix finds it as every Matrix server finds another: the
// server name's /.well-known/matrix/server, then its SRV records, then port
// 8448 (Matrix server-server API, "Resolving server names"); bridge
// openid_base_url overrides that with a fixed URL. Either way, the node's
// own HTTP client, with its address guard and trusted roots, carries the
// requests, the well-known lookup included.
func (b *Bridge) openIDClient() (*federation.Client, string, error) {
	fed := &federation.Client{UserAgent: mautrix.DefaultUserAgent, ResponseSizeLimit: maxOpenIDBody}
	if b.o.OpenIDBaseURL != "" {
		base, err := url.Parse(strings.TrimRight(b.o.OpenIDBaseURL, "/"))
		if err != nil || base.Host == "" {
			return nil, "", fmt.Errorf("openid base URL %q is not a URL", b.o.OpenIDBaseURL)
		}
		fed.HTTP = &http.Client{Transport: baseURLTransport{base: base, next: b.o.HTTPClient}}
		return fed, base.Host, nil
	}
	node, ok := b.o.HTTPClient.Transport.(*http.Transport)
	if !ok || node == nil {
		node = http.DefaultTransport.(*http.Transport)
	}
	// mautrix resolves the server name and dials the address it found
	// through the node's dialer; TLS is checked against the name the
	// resolution says the server answers for, with the node's roots.
	srt := federation.NewServerResolvingTransport(federation.NewInMemoryCache(), exhttp.DialerFunc(node.DialContext), exhttp.ClientSettings{})
	srt.ResolveOpts = &federation.ResolveServerNameOpts{HTTPClient: b.o.HTTPClient}
	tr := node.Clone()
	tr.DialContext = srt.DialContext
	srt.Transport = tr
	fed.HTTP = &http.Client{
		Transport: srt,
		Timeout:   b.o.HTTPClient.Timeout,
		// Federation requests are not redirected.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return fed, b.o.OpenIDServerName, nil
}
