package federation

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/httpapi"
)

// memKeyStorage keeps a keyring in memory.
type memKeyStorage struct {
	mu   sync.Mutex
	data []byte
}

func (m *memKeyStorage) LoadKeys(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return nil, identity.ErrNoKeys
	}
	return m.data, nil
}

func (m *memKeyStorage) SaveKeys(_ context.Context, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data = bytes.Clone(data)
	return nil
}

// offsetClock runs at real time plus an offset: go-fed/httpsig checks
// created and expires against the system clock, so tests move time only
// forward and by less than the signature lifetime's slack allows.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *offsetClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// sigTestNode is a real node over TLS on loopback: it serves its DID
// document (built at the test clock's time, so rotations show) and passes
// every other request to an Authenticator.
type sigTestNode struct {
	did   string
	keys  *identity.Keyring
	srv   *httptest.Server
	clock *offsetClock
	auth  *Authenticator

	mu    sync.Mutex
	trust map[string]string // DID → pin
	got   []*Inbound
}

func newSigTestNode(t *testing.T, clock *offsetClock) *sigTestNode {
	t.Helper()
	kr, err := identity.GenerateKeyring(context.Background(), &memKeyStorage{}, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	n := &sigTestNode{keys: kr, clock: clock, trust: map[string]string{}}
	n.srv = httptest.NewUnstartedServer(http.HandlerFunc(n.serve))
	n.srv.StartTLS()
	t.Cleanup(n.srv.Close)
	n.did, err = identity.DIDFromBaseURL(n.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(n.srv.Certificate())
	resolver := identity.NewResolver(identity.ResolverOptions{
		Client:       identity.NewHTTPClient(identity.ClientOptions{AllowPrivate: true, RootCAs: pool, Timeout: 5 * time.Second}),
		AllowPrivate: true,
		TTL:          30 * time.Second,
		Now:          clock.Now,
	})
	n.auth = &Authenticator{
		Self: n.did,
		Host: CanonicalAuthority(n.srv.Listener.Addr().String()),
		Trusted: func(_ context.Context, did string) (string, error) {
			n.mu.Lock()
			defer n.mu.Unlock()
			pin, ok := n.trust[did]
			if !ok {
				return "", fmt.Errorf("%w: %s", ErrUntrusted, did)
			}
			return pin, nil
		},
		Resolve: func(ctx context.Context, did string, refresh bool) (*identity.Peer, error) {
			if refresh {
				return resolver.Refresh(ctx, did)
			}
			return resolver.Resolve(ctx, did)
		},
		Now: clock.Now,
	}
	return n
}

func (n *sigTestNode) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/.well-known/did.json" {
		doc, err := identity.BuildDocument(n.did, n.keys.Keys(n.clock.Now()), n.srv.URL+"/federation/v1")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/did+json")
		_, _ = w.Write(doc)
		return
	}
	in, err := n.auth.Authenticate(r)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	n.mu.Lock()
	n.got = append(n.got, in)
	n.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (n *sigTestNode) trusts(did, pin string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.trust[did] = pin
}

func (n *sigTestNode) received() []*Inbound {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Inbound(nil), n.got...)
}

func (n *sigTestNode) ecdsaKey(t *testing.T) (string, *ecdsa.PrivateKey) {
	t.Helper()
	frag, priv, err := n.keys.CurrentECDSA()
	if err != nil {
		t.Fatal(err)
	}
	return n.did + "#" + frag, priv
}

const inboxPath = "/federation/v1/inbox"

// newRequest builds a request to n without signing it.
func (n *sigTestNode) newRequest(t *testing.T, method, path string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, n.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// send delivers req to n and returns the status and error code.
func (n *sigTestNode) send(t *testing.T, req *http.Request) (int, httpapi.ErrorDetail) {
	t.Helper()
	resp, err := n.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var eb httpapi.ErrorBody
	if resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Fatalf("status %d, body %q is not an error object: %v", resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, eb.Error
}

// rawSignature makes a Signature header by hand, for what SignRequest
// would never produce.
type rawSignature struct {
	keyID     string
	fragment  string // a key of the sender's DID, instead of keyID
	algorithm string // "" omits the parameter
	headers   []string
	created   int64
	expires   int64
	// mac, when set, signs with HMAC-SHA256 under this secret instead of
	// ECDSA.
	mac []byte
	// highS leaves the ECDSA signature as Go makes it, high S half the
	// time; otherwise it is brought to low S as spec §3.1 requires.
	highS bool
}

func signRaw(t *testing.T, req *http.Request, body []byte, priv *ecdsa.PrivateKey, now time.Time, rs rawSignature) {
	t.Helper()
	req.Header.Set("Host", req.URL.Host)
	if req.Header.Get("Date") == "" {
		req.Header.Set("Date", now.UTC().Format(http.TimeFormat))
	}
	if req.Header.Get("Digest") == "" {
		sum := sha256.Sum256(body)
		req.Header.Set("Digest", "SHA-256="+base64.StdEncoding.EncodeToString(sum[:]))
	}
	if rs.headers == nil {
		rs.headers = signedHeaders
	}
	if rs.created == 0 {
		rs.created = now.Unix()
	}
	if rs.expires == 0 {
		rs.expires = rs.created + 300
	}
	str := buildSigningString(t, req, rs.headers, rs.created, rs.expires)
	var sig []byte
	if rs.mac != nil {
		m := hmac.New(sha256.New, rs.mac)
		m.Write([]byte(str))
		sig = m.Sum(nil)
	} else {
		digest := sha256.Sum256([]byte(str))
		var err error
		if sig, err = ecdsa.SignASN1(rand.Reader, priv, digest[:]); err != nil {
			t.Fatal(err)
		}
		if !rs.highS {
			if sig, err = LowS(sig); err != nil {
				t.Fatal(err)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `keyId="%s",`, rs.keyID)
	if rs.algorithm != "" {
		fmt.Fprintf(&b, `algorithm="%s",`, rs.algorithm)
	}
	fmt.Fprintf(&b, `created=%d,expires=%d,headers="%s",signature="%s"`, rs.created, rs.expires, strings.Join(rs.headers, " "), base64.StdEncoding.EncodeToString(sig))
	req.Header.Set("Signature", b.String())
}

// buildSigningString follows draft-cavage §2.3 as go-fed/httpsig does.
func buildSigningString(t *testing.T, req *http.Request, headers []string, created, expires int64) string {
	t.Helper()
	lines := make([]string, 0, len(headers))
	for _, h := range headers {
		switch h {
		case "(request-target)":
			target := strings.ToLower(req.Method) + " " + req.URL.Path
			if req.URL.RawQuery != "" {
				target += "?" + req.URL.RawQuery
			}
			lines = append(lines, h+": "+target)
		case "(created)":
			lines = append(lines, h+": "+strconv.FormatInt(created, 10))
		case "(expires)":
			lines = append(lines, h+": "+strconv.FormatInt(expires, 10))
		default:
			vals := req.Header.Values(h)
			if len(vals) == 0 {
				t.Fatalf("signing string: no %s header", h)
			}
			lines = append(lines, h+": "+strings.Join(vals, ", "))
		}
	}
	return strings.Join(lines, "\n")
}

type authFixture struct {
	clock    *offsetClock
	receiver *sigTestNode
	sender   *sigTestNode
	keyID    string
	priv     *ecdsa.PrivateKey
}

func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	clock := &offsetClock{}
	f := &authFixture{clock: clock, receiver: newSigTestNode(t, clock), sender: newSigTestNode(t, clock)}
	f.receiver.trusts(f.sender.did, "")
	f.keyID, f.priv = f.sender.ecdsaKey(t)
	return f
}

// signed is a request from the sender to the receiver signed by SignRequest.
func (f *authFixture) signed(t *testing.T, method, path string, body []byte, now time.Time) *http.Request {
	t.Helper()
	req := f.receiver.newRequest(t, method, path, body)
	if err := SignRequest(req, body, f.keyID, f.priv, now); err != nil {
		t.Fatal(err)
	}
	return req
}

var testBody = []byte(`{"v":1}`)

func TestAuthenticateAcceptsSignedRequest(t *testing.T) {
	f := newAuthFixture(t)
	status, detail := f.receiver.send(t, f.signed(t, http.MethodPost, inboxPath+"?x=1", testBody, f.clock.Now()))
	if status != http.StatusNoContent {
		t.Fatalf("status %d %+v", status, detail)
	}
	got := f.receiver.received()
	if len(got) != 1 {
		t.Fatalf("%d requests received", len(got))
	}
	want := Inbound{PeerDID: f.sender.did, KeyID: f.keyID, Body: testBody}
	if got[0].PeerDID != want.PeerDID || got[0].KeyID != want.KeyID || !bytes.Equal(got[0].Body, want.Body) {
		t.Fatalf("inbound %+v, want %+v", *got[0], want)
	}

	// A GET has an empty body and still a Digest.
	status, detail = f.receiver.send(t, f.signed(t, http.MethodGet, "/federation/v1/conferences/c-0123456789abcdef/roster", nil, f.clock.Now()))
	if status != http.StatusNoContent {
		t.Fatalf("GET: status %d %+v", status, detail)
	}
	if got := f.receiver.received(); len(got) != 2 || len(got[1].Body) != 0 {
		t.Fatalf("GET: received %+v", got)
	}
}

func TestClientDo(t *testing.T) {
	f := newAuthFixture(t)
	c := &Client{HTTP: f.receiver.srv.Client(), DID: f.sender.did, Keys: f.sender.keys, Now: f.clock.Now}
	status, body, err := c.Do(context.Background(), http.MethodPost, f.receiver.srv.URL+inboxPath, testBody)
	if err != nil || status != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("Do: %d %q %v", status, body, err)
	}
	got := f.receiver.received()
	if len(got) != 1 || got[0].KeyID != f.keyID || !bytes.Equal(got[0].Body, testBody) {
		t.Fatalf("received %+v", got)
	}
	// Refusals come back as status and error body, not as an error.
	f.receiver.mu.Lock()
	delete(f.receiver.trust, f.sender.did)
	f.receiver.mu.Unlock()
	status, body, err = c.Do(context.Background(), http.MethodPost, f.receiver.srv.URL+inboxPath, testBody)
	if err != nil || status != http.StatusForbidden || !strings.Contains(string(body), `"code":"forbidden"`) {
		t.Fatalf("untrusted Do: %d %q %v", status, body, err)
	}
}

// TestAuthenticateRefuses runs one attack per case; each must be refused
// with its exact status and code, for the expected reason, and reach no
// handler.
func TestAuthenticateRefuses(t *testing.T) {
	type tc struct {
		name   string
		build  func(t *testing.T, f *authFixture) *http.Request
		status int
		reason string // part of the message, so the refusal is for the right reason
	}
	withHeader := func(name, value string) func(t *testing.T, f *authFixture) *http.Request {
		return func(t *testing.T, f *authFixture) *http.Request {
			req := f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now())
			req.Header.Set(name, value)
			return req
		}
	}
	editSignature := func(edit func(string) string) func(t *testing.T, f *authFixture) *http.Request {
		return func(t *testing.T, f *authFixture) *http.Request {
			req := f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now())
			req.Header.Set("Signature", edit(req.Header.Get("Signature")))
			return req
		}
	}
	raw := func(rs rawSignature) func(t *testing.T, f *authFixture) *http.Request {
		return func(t *testing.T, f *authFixture) *http.Request {
			req := f.receiver.newRequest(t, http.MethodPost, inboxPath, testBody)
			switch {
			case rs.fragment != "":
				rs.keyID = f.sender.did + "#" + rs.fragment
			case rs.keyID == "":
				rs.keyID = f.keyID
			}
			signRaw(t, req, testBody, f.priv, f.clock.Now(), rs)
			return req
		}
	}
	now := func() int64 { return time.Now().Unix() }
	cases := []tc{
		{"missing signature", func(t *testing.T, f *authFixture) *http.Request {
			req := f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now())
			req.Header.Del("Signature")
			return req
		}, 401, "expected one Signature header, got 0"},
		{"two signature headers", func(t *testing.T, f *authFixture) *http.Request {
			req := f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now())
			req.Header.Add("Signature", req.Header.Get("Signature"))
			return req
		}, 401, "expected one Signature header, got 2"},
		{"bad quoting", editSignature(func(s string) string { return strings.Replace(s, `keyId="`, `keyId=`, 1) }), 401, `parameter "keyId" must be quoted`},
		{"unterminated quote", editSignature(func(s string) string { return strings.TrimSuffix(s, `"`) }), 401, "unterminated quoted value"},
		{"space after comma", editSignature(func(s string) string { return strings.Replace(s, `,headers=`, `, headers=`, 1) }), 401, `malformed parameter name " headers"`},
		{"duplicate parameter", editSignature(func(s string) string { return s + `,keyId="did:web:evil.example#k-1"` }), 401, `parameter "keyId" given twice`},
		{"unknown parameter", editSignature(func(s string) string { return s + `,nonce="1"` }), 401, `unknown parameter "nonce"`},
		{"bad base64", editSignature(func(s string) string {
			i := strings.Index(s, `signature="`)
			return s[:i] + `signature="not*base64"`
		}), 401, "signature is not base64"},
		{"empty signature value", editSignature(func(s string) string {
			i := strings.Index(s, `signature="`)
			return s[:i] + `signature=""`
		}), 401, `parameter "signature" is empty`},
		{"covers date only", raw(rawSignature{headers: []string{"date"}}), 401, "signature does not cover (request-target)"},
		{"no digest", raw(rawSignature{headers: []string{"(request-target)", "(created)", "(expires)", "host", "date"}}), 401, "signature does not cover digest"},
		{"no host", raw(rawSignature{headers: []string{"(request-target)", "(created)", "(expires)", "date", "digest"}}), 401, "signature does not cover host"},
		{"no request target", raw(rawSignature{headers: []string{"(created)", "(expires)", "host", "date", "digest"}}), 401, "signature does not cover (request-target)"},
		{"replayed on another path", func(t *testing.T, f *authFixture) *http.Request {
			req := f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now())
			req.URL.Path = "/federation/v1/other"
			return req
		}, 401, "signature does not verify"},
		{"replayed with another query", func(t *testing.T, f *authFixture) *http.Request {
			req := f.signed(t, http.MethodPost, inboxPath+"?after=1", testBody, f.clock.Now())
			req.URL.RawQuery = "after=0"
			return req
		}, 401, "signature does not verify"},
		{"replayed with another method", func(t *testing.T, f *authFixture) *http.Request {
			req := f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now())
			req.Method = http.MethodPut
			return req
		}, 401, "signature does not verify"},
		{"replayed to another host", func(t *testing.T, f *authFixture) *http.Request {
			req := f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now())
			req.Host = "agency.example"
			return req
		}, 401, `request signed for host "agency.example", not this node's`},
		{"body changed, digest kept", func(t *testing.T, f *authFixture) *http.Request {
			req := f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now())
			other := []byte(`{"v":2}`)
			req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(other)), int64(len(other))
			return req
		}, 401, "Digest does not match the body"},
		{"body and digest changed", func(t *testing.T, f *authFixture) *http.Request {
			req := f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now())
			other := []byte(`{"v":2}`)
			sum := sha256.Sum256(other)
			req.Header.Set("Digest", "SHA-256="+base64.StdEncoding.EncodeToString(sum[:]))
			req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(other)), int64(len(other))
			return req
		}, 401, "signature does not verify"},
		{"digest of another algorithm", withHeader("Digest", "SHA-512=z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="), 401, "Digest must be SHA-256=<base64>"},
		{"date 10 minutes old", func(t *testing.T, f *authFixture) *http.Request {
			return f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now().Add(-10*time.Minute))
		}, 401, "away from our clock"},
		{"date 10 minutes ahead", func(t *testing.T, f *authFixture) *http.Request {
			return f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now().Add(10*time.Minute))
		}, 401, "away from our clock"},
		{"date not IMF-fixdate", withHeader("Date", time.Now().UTC().Format(time.RFC3339)), 401, "is not an IMF-fixdate"},
		{"created in the future", raw(rawSignature{created: now() + 600}), 401, "is in the future"},
		{"created too old", raw(rawSignature{created: now() - 600, expires: now() - 300 + 10}), 401, "is too old"},
		{"expires in the past", raw(rawSignature{created: now() - 200, expires: now() - 10}), 401, "signature expired"},
		{"lifetime over 300 s", raw(rawSignature{created: now(), expires: now() + 301}), 401, "expires − created must be 1 to 300 s"},
		{"unknown key", raw(rawSignature{fragment: "k-aaaaaaaa"}), 401, "is not a key of"},
		{"keyId without fragment", raw(rawSignature{keyID: "did:web:agency.example"}), 401, "is not of the form did#fragment"},
		{"algorithm hmac-sha256 with the public key as secret", func(t *testing.T, f *authFixture) *http.Request {
			req := f.receiver.newRequest(t, http.MethodPost, inboxPath, testBody)
			secret := []byte(f.sender.keys.Keys(f.clock.Now())[0].PublicMultibase)
			signRaw(t, req, testBody, nil, f.clock.Now(), rawSignature{keyID: f.keyID, algorithm: "hmac-sha256", mac: secret})
			return req
		}, 401, `algorithm "hmac-sha256" refused`},
		{"hmac signature with no algorithm", func(t *testing.T, f *authFixture) *http.Request {
			req := f.receiver.newRequest(t, http.MethodPost, inboxPath, testBody)
			secret := []byte(f.sender.keys.Keys(f.clock.Now())[0].PublicMultibase)
			signRaw(t, req, testBody, nil, f.clock.Now(), rawSignature{keyID: f.keyID, mac: secret})
			return req
		}, 401, "not an ASN.1 DER ECDSA signature"},
		{"algorithm rsa-sha256", raw(rawSignature{algorithm: "rsa-sha256"}), 401, `algorithm "rsa-sha256" refused`},
		{"algorithm ecdsa-sha256 is fine but signature is not", func(t *testing.T, f *authFixture) *http.Request {
			req := f.receiver.newRequest(t, http.MethodPost, inboxPath, testBody)
			signRaw(t, req, testBody, f.priv, f.clock.Now(), rawSignature{keyID: f.keyID, algorithm: "ecdsa-sha256"})
			req.Header.Set("Date", f.clock.Now().Add(-time.Second).UTC().Format(http.TimeFormat))
			return req
		}, 401, "signature does not verify"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newAuthFixture(t)
			req := c.build(t, f)
			status, detail := f.receiver.send(t, req)
			wantCode := map[int]string{401: "unauthorized", 403: "forbidden", 413: "too_large"}[c.status]
			if status != c.status || detail.Code != wantCode {
				t.Fatalf("got %d %+v, want %d %s", status, detail, c.status, wantCode)
			}
			if !strings.Contains(detail.Message, c.reason) {
				t.Fatalf("message %q does not say %q", detail.Message, c.reason)
			}
			if got := f.receiver.received(); len(got) != 0 {
				t.Fatalf("refused request reached the handler: %+v", got)
			}
		})
	}
}

func TestAuthenticateUntrustedNode(t *testing.T) {
	f := newAuthFixture(t)
	stranger := newSigTestNode(t, f.clock)
	keyID, priv := stranger.ecdsaKey(t)
	req := f.receiver.newRequest(t, http.MethodPost, inboxPath, testBody)
	if err := SignRequest(req, testBody, keyID, priv, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	assertRefused(t, f.receiver, req, 403, "forbidden", "is not on the trust list")
}

func TestAuthenticateOwnKey(t *testing.T) {
	f := newAuthFixture(t)
	keyID, priv := f.receiver.ecdsaKey(t)
	req := f.receiver.newRequest(t, http.MethodPost, inboxPath, testBody)
	if err := SignRequest(req, testBody, keyID, priv, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	assertRefused(t, f.receiver, req, 403, "forbidden", "this node's own key")
}

func TestAuthenticateBodyTooLarge(t *testing.T) {
	f := newAuthFixture(t)
	big := bytes.Repeat([]byte("a"), 1<<20+1)
	assertRefused(t, f.receiver, f.signed(t, http.MethodPost, inboxPath, big, f.clock.Now()), 413, "too_large", "over 1048576")

	// Exactly 1 MiB is accepted.
	limit := bytes.Repeat([]byte("a"), 1<<20)
	if status, detail := f.receiver.send(t, f.signed(t, http.MethodPost, inboxPath, limit, f.clock.Now())); status != http.StatusNoContent {
		t.Fatalf("1 MiB body: %d %+v", status, detail)
	}
}

func TestAuthenticatePin(t *testing.T) {
	f := newAuthFixture(t)
	other := newSigTestNode(t, f.clock)
	otherPin := other.keys.Keys(f.clock.Now())[0].PublicMultibase
	f.receiver.trusts(f.sender.did, otherPin)
	assertRefused(t, f.receiver, f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now()), 403, "forbidden", "is not the key pinned for")

	f.receiver.trusts(f.sender.did, f.sender.keys.Keys(f.clock.Now())[0].PublicMultibase)
	if status, detail := f.receiver.send(t, f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now())); status != http.StatusNoContent {
		t.Fatalf("pinned key: %d %+v", status, detail)
	}
}

func TestAuthenticateRotatedKey(t *testing.T) {
	f := newAuthFixture(t)
	oldKeyID, oldPriv := f.keyID, f.priv
	// The receiver caches the document with the old key.
	if status, detail := f.receiver.send(t, f.signed(t, http.MethodPost, inboxPath, testBody, f.clock.Now())); status != http.StatusNoContent {
		t.Fatalf("before rotation: %d %+v", status, detail)
	}
	if _, err := f.sender.keys.Rotate(context.Background(), time.Minute, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	newKeyID, newPriv := f.sender.ecdsaKey(t)
	if newKeyID == oldKeyID {
		t.Fatal("rotation kept the key id")
	}
	// The resolver re-fetches for an unknown key at most once per 10 s.
	f.clock.Advance(11 * time.Second)

	// Inside the overlap, both keys are accepted; the new one is found by
	// re-resolving, since the cached document predates it.
	for _, k := range []struct {
		id   string
		priv *ecdsa.PrivateKey
	}{{oldKeyID, oldPriv}, {newKeyID, newPriv}} {
		req := f.receiver.newRequest(t, http.MethodPost, inboxPath, testBody)
		if err := SignRequest(req, testBody, k.id, k.priv, f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		if status, detail := f.receiver.send(t, req); status != http.StatusNoContent {
			t.Fatalf("%s inside the overlap: %d %+v", k.id, status, detail)
		}
	}

	// After the overlap (and the cache TTL), the old key is gone from the
	// document and refused.
	f.clock.Advance(2 * time.Minute)
	req := f.receiver.newRequest(t, http.MethodPost, inboxPath, testBody)
	if err := SignRequest(req, testBody, oldKeyID, oldPriv, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	before := len(f.receiver.received())
	status, detail := f.receiver.send(t, req)
	if status != http.StatusUnauthorized || detail.Code != "unauthorized" || !strings.Contains(detail.Message, "is not a key of") {
		t.Fatalf("old key after overlap: %d %+v", status, detail)
	}
	if len(f.receiver.received()) != before {
		t.Fatal("refused request reached the handler")
	}
}

func assertRefused(t *testing.T, n *sigTestNode, req *http.Request, status int, code, reason string) {
	t.Helper()
	before := len(n.received())
	got, detail := n.send(t, req)
	if got != status || detail.Code != code || !strings.Contains(detail.Message, reason) {
		t.Fatalf("got %d %+v, want %d %s (%q)", got, detail, status, code, reason)
	}
	if len(n.received()) != before {
		t.Fatal("refused request reached the handler")
	}
}

// TestSignRequestInteroperates checks what SignRequest sends against spec
// §3.1 and against the signing string rebuilt independently.
func TestSignRequestInteroperates(t *testing.T) {
	f := newAuthFixture(t)
	now := f.clock.Now()
	req := f.signed(t, http.MethodPost, inboxPath+"?a=b", testBody, now)
	p, err := ParseSignatureHeader(req.Header.Get("Signature"))
	if err != nil {
		t.Fatal(err)
	}
	if p.KeyID != f.keyID || p.Algorithm != "hs2019" || strings.Join(p.Headers, " ") != "(request-target) (created) (expires) host date digest" || p.Expires-p.Created != 300 {
		t.Fatalf("params %+v", p)
	}
	u, _ := url.Parse(f.receiver.srv.URL)
	sum := sha256.Sum256(testBody)
	if req.Header.Get("Host") != u.Host || req.Header.Get("Date") != now.UTC().Format(http.TimeFormat) || req.Header.Get("Digest") != "SHA-256="+base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("headers %v", req.Header)
	}
	digest := sha256.Sum256([]byte(buildSigningString(t, req, p.Headers, p.Created, p.Expires)))
	if !ecdsa.VerifyASN1(&f.priv.PublicKey, digest[:], p.Signature) {
		t.Fatal("signature does not verify over the independently built signing string")
	}
}

func TestWriteError(t *testing.T) {
	tests := []struct {
		err    error
		status int
		body   string
	}{
		{httpapi.BadRequest("payload: %s", "x"), 400, `{"error":{"code":"bad_request","message":"payload: x"}}`},
		{httpapi.Unauthorized("no"), 401, `{"error":{"code":"unauthorized","message":"no"}}`},
		{httpapi.Forbidden("no"), 403, `{"error":{"code":"forbidden","message":"no"}}`},
		{httpapi.NotFound("no"), 404, `{"error":{"code":"not_found","message":"no"}}`},
		{httpapi.Conflict("no"), 409, `{"error":{"code":"conflict","message":"no"}}`},
		{httpapi.Gone("no"), 410, `{"error":{"code":"gone","message":"no"}}`},
		{httpapi.TooLarge("no"), 413, `{"error":{"code":"too_large","message":"no"}}`},
		{fmt.Errorf("inbox: %w", httpapi.Conflict("dup")), 409, `{"error":{"code":"conflict","message":"dup"}}`},
		{fmt.Errorf("pq: password authentication failed for user entente"), 500, `{"error":{"code":"internal","message":"internal error"}}`},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		httpapi.WriteError(rec, tt.err)
		if rec.Code != tt.status || rec.Body.String() != tt.body || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%v: %d %s %q", tt.err, rec.Code, rec.Body, rec.Header().Get("Content-Type"))
		}
	}
	cause := fmt.Errorf("bad key")
	e := httpapi.Unauthorized("verify: %w", cause)
	if e.Unwrap() != cause || e.Error() != "unauthorized: verify: bad key" {
		t.Fatalf("%v unwraps to %v", e, e.Unwrap())
	}
}
