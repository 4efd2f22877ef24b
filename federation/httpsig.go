package federation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/go-fed/httpsig"
)

// signedHeaders is the exact list of spec §3.1.
var signedHeaders = []string{httpsig.RequestTarget, "(created)", "(expires)", "host", "date", "digest"}

// signatureLifetime is expires − created, in seconds (spec §3.1).
const signatureLifetime = 300

// SignRequest sets Date (from now), Digest, Host and Signature on req for
// body (spec §3.1). go-fed/httpsig fixes created from the system clock when
// its signer is built, so created and expires follow the system clock even
// when now does not; a signer is built per request because go-fed's signers
// are not safe for concurrent use and would otherwise reuse one created.
func SignRequest(req *http.Request, body []byte, keyID string, priv *ecdsa.PrivateKey, now time.Time) error {
	if priv == nil {
		return fmt.Errorf("sign request: no private key")
	}
	host := req.Host
	if host == "" && req.URL != nil {
		host = req.URL.Host
	}
	if host == "" {
		return fmt.Errorf("sign request: no host")
	}
	req.Host = host
	// go-fed reads every signed header from the map, Host included; the
	// client writes req.Host on the wire and never this entry.
	req.Header.Set("Host", host)
	req.Header.Set("Date", now.UTC().Format(http.TimeFormat))
	req.Header.Del("Digest")
	req.Header.Del("Signature")
	if body == nil {
		body = []byte{} // go-fed adds a Digest only for a non-nil body
	}
	signer, algo, err := httpsig.NewSigner([]httpsig.Algorithm{httpsig.ECDSA_SHA256}, httpsig.DigestSha256, signedHeaders, httpsig.Signature, signatureLifetime)
	if err != nil {
		return fmt.Errorf("sign request: %w", err)
	}
	// NewSigner falls back to RSA silently when no preference is available.
	if algo != httpsig.ECDSA_SHA256 {
		return fmt.Errorf("sign request: httpsig chose %s instead of %s", algo, httpsig.ECDSA_SHA256)
	}
	if err := signer.SignRequest(priv, keyID, req, body); err != nil {
		return fmt.Errorf("sign request: %w", err)
	}
	// Go's ECDSA leaves S high half of the time; receivers accept only the
	// low form (spec §3.1).
	if err := lowSHeader(req.Header); err != nil {
		return fmt.Errorf("sign request: %w", err)
	}
	// What we send must pass our own receiving policy.
	p, err := ParseSignatureHeader(req.Header.Get("Signature"))
	if err != nil {
		return fmt.Errorf("sign request: produced a Signature header we would refuse: %w", err)
	}
	if strings.Join(p.Headers, " ") != strings.Join(signedHeaders, " ") || p.KeyID != keyID {
		return fmt.Errorf("sign request: produced unexpected parameters %q", req.Header.Get("Signature"))
	}
	return nil
}

// lowSHeader rewrites the signature parameter of the Signature header to
// its low-S form.
func lowSHeader(h http.Header) error {
	v := h.Get("Signature")
	i := strings.Index(v, `signature="`)
	if i < 0 {
		return fmt.Errorf("no signature parameter in %q", v)
	}
	start := i + len(`signature="`)
	end := strings.IndexByte(v[start:], '"')
	if end < 0 {
		return fmt.Errorf("unterminated signature parameter in %q", v)
	}
	der, err := base64.StdEncoding.DecodeString(v[start : start+end])
	if err != nil {
		return err
	}
	if der, err = LowS(der); err != nil {
		return err
	}
	h.Set("Signature", v[:start]+base64.StdEncoding.EncodeToString(der)+v[start+end:])
	return nil
}

// LowS returns the DER ECDSA P-256 signature der in its low-S form: (r, n−s)
// when s > n/2, der itself otherwise. Both verify; only the low one is
// accepted (spec §3.1).
func LowS(der []byte) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		return nil, fmt.Errorf("ECDSA signature: %w", err)
	}
	n := elliptic.P256().Params().N
	if rs.S.Cmp(new(big.Int).Rsh(n, 1)) <= 0 {
		return der, nil
	}
	rs.S.Sub(n, rs.S)
	return asn1.Marshal(rs)
}
