package federation

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/go-fed/httpsig"

	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/httpapi"
)

// ErrUntrusted is wrapped by Authenticator.Trusted for a DID that is not on
// the trust list.
var ErrUntrusted = errors.New("federation: node not on the trust list")

const (
	defaultMaxBody = 1 << 20
	defaultSkew    = 300 * time.Second
)

// Authenticator is the policy layer of spec §3.2 around go-fed/httpsig,
// whose verifier alone accepts tampered bodies, signatures covering only
// the date, and stale dates.
type Authenticator struct {
	Self string // this node's DID
	// Host is the authority (host[:port], lower case, without :443) of
	// this node's federation endpoint: the only host a request to it may
	// be signed for.
	Host string
	// Trusted returns the key pin of a trusted DID ("" for none), or an
	// error wrapping ErrUntrusted.
	Trusted func(ctx context.Context, did string) (pin string, err error)
	// Resolve returns a peer's DID document; refresh asks for a fresh fetch.
	Resolve func(ctx context.Context, did string, refresh bool) (*identity.Peer, error)
	// Admit, when set, applies the per-peer rate limit to an authenticated
	// peer before its body is read; it returns a TooManyRequests refusal.
	Admit   func(did string) error
	MaxBody int64         // zero means 1 MiB
	Skew    time.Duration // zero means 300 s
	Now     func() time.Time
}

// Inbound is an authenticated request: who signed it, with which key, and
// the body as read.
type Inbound struct {
	PeerDID string
	KeyID   string
	Body    []byte
}

// Authenticate applies steps 1 to 10 of spec §3.2 in order and returns the
// body it read. Every refusal is an *httpapi.Error with the status of its step;
// other errors are our own failures (the trust list could not be read).
// The signature covers the Digest header, not the body, so a request is
// authenticated, and its peer found trusted and within its rate, before a
// byte of its body is read: refusing a stranger costs no more than parsing
// its headers (spec §3.4). Step 11 (the envelope's origin) is left to the
// handler that opens it.
func (a *Authenticator) Authenticate(r *http.Request) (*Inbound, error) {
	ctx := r.Context()
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	maxBody := a.MaxBody
	if maxBody <= 0 {
		maxBody = defaultMaxBody
	}
	skew := a.Skew
	if skew <= 0 {
		skew = defaultSkew
	}
	if a.Host == "" {
		return nil, errors.New("federation: authenticator has no Host")
	}

	// 1. Exactly one Signature header that parses.
	values := r.Header.Values("Signature")
	if len(values) != 1 {
		return nil, httpapi.Unauthorized("expected one Signature header, got %d", len(values))
	}
	p, err := ParseSignatureHeader(values[0])
	if err != nil {
		return nil, httpapi.Unauthorized("Signature header: %w", err)
	}

	// 2. The algorithm comes from the key; a header naming another one is
	// an attempt at algorithm confusion.
	if p.Algorithm != "" && p.Algorithm != "hs2019" && p.Algorithm != "ecdsa-sha256" {
		return nil, httpapi.Unauthorized("algorithm %q refused", p.Algorithm)
	}

	// 3. Coverage.
	for _, h := range signedHeaders {
		if !slices.Contains(p.Headers, h) {
			return nil, httpapi.Unauthorized("signature does not cover %s", h)
		}
	}

	// 4. The signed host is this node's: a request signed for another node
	// cannot be replayed here.
	if err := a.checkHost(r); err != nil {
		return nil, err
	}

	// 5. Time.
	if err := checkSignatureTime(r.Header, p, now, skew); err != nil {
		return nil, err
	}

	// 6. The Digest header's form; the body is compared with it at step 10.
	want, err := parseDigest(r.Header)
	if err != nil {
		return nil, err
	}

	// 7. Key: trust before anything costs a lookup.
	did, pub, err := a.key(ctx, p.KeyID)
	if err != nil {
		return nil, err
	}

	// 8. Signature, with go-fed's verifier and the algorithm of the key,
	// after our own check that it is strict DER with a low S.
	if err := checkLowS(p.Signature); err != nil {
		return nil, httpapi.Unauthorized("signature: %w", err)
	}
	verifier, err := httpsig.NewVerifier(r)
	if err != nil {
		return nil, httpapi.Unauthorized("signature: %w", err)
	}
	if verifier.KeyId() != p.KeyID {
		return nil, httpapi.Unauthorized("signature parameters read ambiguously")
	}
	ecPub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pub.UncompressedBytes())
	if err != nil {
		return nil, httpapi.Unauthorized("key %s: %w", p.KeyID, err)
	}
	if err := verifier.Verify(ecPub, httpsig.ECDSA_SHA256); err != nil {
		return nil, httpapi.Unauthorized("signature does not verify with %s: %w", p.KeyID, err)
	}

	// 9. The peer's rate, counted only for requests it really signed, so
	// that nobody can spend a peer's allowance in its name.
	if a.Admit != nil {
		if err := a.Admit(did); err != nil {
			return nil, err
		}
	}

	// 10. Body size, and its digest as received.
	if r.ContentLength > maxBody {
		return nil, httpapi.TooLarge("body of %d bytes is over %d", r.ContentLength, maxBody)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, httpapi.BadRequest("cannot read body: %w", err)
	}
	if int64(len(body)) > maxBody {
		return nil, httpapi.TooLarge("body is over %d bytes", maxBody)
	}
	if got := sha256.Sum256(body); !bytes.Equal(got[:], want) {
		return nil, httpapi.Unauthorized("Digest does not match the body")
	}
	return &Inbound{PeerDID: did, KeyID: p.KeyID, Body: body}, nil
}

// checkHost compares the host the request was signed for with this node's
// (spec §3.2 step 4): ASCII case is ignored and an explicit default port
// :443 is the same as none; anything else must match exactly.
func (a *Authenticator) checkHost(r *http.Request) error {
	// go-fed reads a Host entry of the header map before r.Host; Go's
	// server never puts one there, and none may disagree with r.Host.
	if hs := r.Header.Values("Host"); len(hs) > 1 || len(hs) == 1 && hs[0] != r.Host {
		return httpapi.Unauthorized("ambiguous Host")
	}
	if got := CanonicalAuthority(r.Host); got != a.Host {
		return httpapi.Unauthorized("request signed for host %q, not this node's %q", r.Host, a.Host)
	}
	return nil
}

// CanonicalAuthority is host[:port] in the form spec §3.2 compares: lower
// case, without the default port :443.
func CanonicalAuthority(hostport string) string {
	return strings.TrimSuffix(strings.ToLower(hostport), ":443")
}

// checkLowS refuses an ECDSA signature that is not strict ASN.1 DER or
// whose S is in the upper half of the group order: (r, n−s) verifies as
// well as (r, s), so a high S would give one request two valid signatures
// (spec §3.1, identity.md).
func checkLowS(sig []byte) error {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	if err != nil || len(rest) != 0 {
		return errors.New("not an ASN.1 DER ECDSA signature")
	}
	if again, err := asn1.Marshal(rs); err != nil || !bytes.Equal(again, sig) {
		return errors.New("not in strict DER form")
	}
	n := elliptic.P256().Params().N
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.Cmp(n) >= 0 || rs.S.Cmp(n) >= 0 {
		return errors.New("r or s out of range")
	}
	if rs.S.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		return errors.New("high S refused: only the low-S form is valid")
	}
	return nil
}

func checkSignatureTime(h http.Header, p SignatureParams, now time.Time, skew time.Duration) error {
	dates := h.Values("Date")
	if len(dates) != 1 {
		return httpapi.Unauthorized("expected one Date header, got %d", len(dates))
	}
	date, err := time.Parse(http.TimeFormat, dates[0])
	if err != nil {
		return httpapi.Unauthorized("Date %q is not an IMF-fixdate", dates[0])
	}
	if d := date.Sub(now); d > skew || d < -skew {
		return httpapi.Unauthorized("Date %s is %s away from our clock", dates[0], d.Round(time.Second))
	}
	if p.Created == 0 || p.Expires == 0 {
		return httpapi.Unauthorized("created and expires parameters are required")
	}
	s, sec := int64(skew/time.Second), now.Unix()
	switch {
	case p.Created > sec+s:
		return httpapi.Unauthorized("created %d is in the future", p.Created)
	case p.Created < sec-s:
		return httpapi.Unauthorized("created %d is too old", p.Created)
	case p.Expires <= sec:
		return httpapi.Unauthorized("signature expired at %d", p.Expires)
	case p.Expires <= p.Created || p.Expires-p.Created > signatureLifetime:
		return httpapi.Unauthorized("expires − created must be 1 to %d s", signatureLifetime)
	}
	return nil
}

// parseDigest reads the one Digest header, SHA-256=<base64>.
func parseDigest(h http.Header) ([]byte, error) {
	digests := h.Values("Digest")
	if len(digests) != 1 {
		return nil, httpapi.Unauthorized("expected one Digest header, got %d", len(digests))
	}
	enc, ok := strings.CutPrefix(digests[0], "SHA-256=")
	if !ok {
		return nil, httpapi.Unauthorized("Digest must be SHA-256=<base64>")
	}
	got, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil || len(got) != sha256.Size {
		return nil, httpapi.Unauthorized("Digest is not the base64 of a SHA-256")
	}
	return got, nil
}

// key applies step 7: trust, resolution (once more with a fresh document
// for an unknown key, in case the peer just rotated), and the pin.
func (a *Authenticator) key(ctx context.Context, keyID string) (string, atcrypto.PublicKey, error) {
	did, _, ok := cutKeyID(keyID)
	if !ok {
		return "", nil, httpapi.Unauthorized("keyId %q is not of the form did#fragment", keyID)
	}
	if did == a.Self {
		return "", nil, httpapi.Forbidden("request signed with this node's own key")
	}
	pin, err := a.Trusted(ctx, did)
	if errors.Is(err, ErrUntrusted) {
		return "", nil, httpapi.Forbidden("%s is not on the trust list", did)
	}
	if err != nil {
		return "", nil, fmt.Errorf("trust list lookup for %s: %w", did, err)
	}
	peer, err := a.Resolve(ctx, did, false)
	if err != nil {
		return "", nil, unresolved(did, err)
	}
	pub, err := peer.Key(keyID)
	if errors.Is(err, identity.ErrUnknownKey) {
		if peer, err = a.Resolve(ctx, did, true); err != nil {
			return "", nil, unresolved(did, err)
		}
		pub, err = peer.Key(keyID)
	}
	if err != nil {
		return "", nil, httpapi.Unauthorized("%s is not a key of %s", keyID, did)
	}
	if _, ok := pub.(*atcrypto.PublicKeyP256); !ok {
		return "", nil, httpapi.Unauthorized("%s is not a P-256 key", keyID)
	}
	if pin != "" {
		pinned, err := atcrypto.ParsePublicMultibase(pin)
		if err != nil {
			return "", nil, fmt.Errorf("key pin of %s does not parse: %w", did, err)
		}
		if !pinned.Equal(pub) {
			return "", nil, httpapi.Forbidden("%s is not the key pinned for %s", keyID, did)
		}
	}
	return did, pub, nil
}

// unresolved is the refusal of a request whose signer's DID document could
// not be had: 503 with Retry-After when the failure may pass (the sender
// retries, spec §3.2 step 7 and §8), 401 when the document was refused.
func unresolved(did string, err error) *httpapi.Error {
	if ue, ok := errors.AsType[*identity.UnavailableError](err); ok {
		return httpapi.Unavailable(max(ue.RetryAfter, time.Second), "cannot resolve %s now", did)
	}
	return httpapi.Unauthorized("cannot resolve %s", did)
}

// Client sends signed requests to peers: outbox deliveries and roster or
// record fetches.
type Client struct {
	HTTP *http.Client // the SSRF-guarded client of identity.NewHTTPClient
	DID  string
	Keys interface {
		CurrentECDSA() (keyID string, priv *ecdsa.PrivateKey, err error)
	}
	Now func() time.Time
}

// maxResponseBody caps what a peer may answer, as we cap what it may send.
const maxResponseBody = defaultMaxBody

// Do signs and sends a request and returns the status and body. A body
// over 1 MiB is an error.
func (c *Client) Do(ctx context.Context, method, url string, body []byte) (int, []byte, error) {
	a, err := c.send(ctx, method, url, body)
	return a.status, a.body, err
}

// answer is a peer's response to a signed request.
type answer struct {
	status int
	body   []byte
	// retryAfter is the peer's Retry-After, 0 when absent or unreadable.
	retryAfter time.Duration
}

func (c *Client) send(ctx context.Context, method, url string, body []byte) (answer, error) {
	frag, priv, err := c.Keys.CurrentECDSA()
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	if err := SignRequest(req, body, c.DID+"#"+frag, priv, now); err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now)}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return a, fmt.Errorf("%s %s: read response: %w", method, url, err)
	}
	if len(b) > maxResponseBody {
		return a, fmt.Errorf("%s %s: response over %d bytes", method, url, maxResponseBody)
	}
	a.body = b
	return a, nil
}

// parseRetryAfter reads delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, maxRetryAfterSeconds)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfterSeconds*time.Second)
	}
	return 0
}

// maxRetryAfterSeconds keeps a peer's Retry-After from overflowing a
// Duration; the outbox caps it further at its longest backoff.
const maxRetryAfterSeconds = 7 * 24 * 3600
