package cluster

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Headers of a request one replica makes to another (docs/replicas.md,
// "Link authentication").
const (
	HeaderFrom      = "Entente-Replica-From"
	HeaderDate      = "Entente-Replica-Date"
	HeaderDigest    = "Entente-Replica-Digest"
	HeaderSignature = "Entente-Replica-Signature"
)

// linkSkew is how far a signed request's date may be from now.
const linkSkew = 30 * time.Second

// maxSignedBody bounds the body SignRequest and Authenticate read.
const maxSignedBody = 1 << 20

// LinkLabel is the HKDF info that derives the link secret from the node's
// signing key.
const LinkLabel = "entente replica link"

// DeriveSecret derives the 32-byte secret of the links between a node's
// replicas from key material every replica shares (the node's private
// signing key, kept in the database): nothing more to configure, and it
// changes when the key rotates on every replica alike.
func DeriveSecret(keyMaterial []byte) ([]byte, error) {
	if len(keyMaterial) == 0 {
		return nil, errors.New("cluster: no key material for the replica link")
	}
	return hkdf.Key(sha256.New, keyMaterial, nil, LinkLabel, 32)
}

// IsSigned reports whether r claims to come from another replica; only
// Authenticate says whether it does.
func IsSigned(r *http.Request) bool { return r.Header.Get(HeaderSignature) != "" }

// SignRequest marks r as coming from this replica: an HMAC-SHA256 with the
// link secret over its method, path and query, date, body digest and the
// sending replica. It reads and restores r's body.
func (c *Cluster) SignRequest(r *http.Request) {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		body, _ = io.ReadAll(io.LimitReader(r.Body, maxSignedBody))
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	d := sha256.Sum256(body)
	r.Header.Set(HeaderFrom, c.opts.ReplicaID)
	r.Header.Set(HeaderDate, time.Now().UTC().Format(http.TimeFormat))
	r.Header.Set(HeaderDigest, "sha-256="+base64.StdEncoding.EncodeToString(d[:]))
	r.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(c.mac(r)))
}

// Authenticate accepts r only if another replica of this node signed it
// within linkSkew of now and nothing signed changed on the way.
func (c *Cluster) Authenticate(r *http.Request) error {
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get(HeaderSignature))
	if err != nil || len(sig) == 0 {
		return errors.New("replica link: missing or malformed " + HeaderSignature)
	}
	if r.Header.Get(HeaderFrom) == "" {
		return errors.New("replica link: missing " + HeaderFrom)
	}
	date, err := http.ParseTime(r.Header.Get(HeaderDate))
	if err != nil {
		return errors.New("replica link: missing or malformed " + HeaderDate)
	}
	if d := time.Since(date); d > linkSkew || d < -linkSkew {
		return fmt.Errorf("replica link: %s is %s away from now, over %s", HeaderDate, d.Round(time.Second), linkSkew)
	}
	if !hmac.Equal(sig, c.mac(r)) {
		return errors.New("replica link: signature does not match")
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		body, err = io.ReadAll(io.LimitReader(r.Body, maxSignedBody+1))
		r.Body.Close()
		if err != nil {
			return fmt.Errorf("replica link: reading the body: %w", err)
		}
		if len(body) > maxSignedBody {
			return errors.New("replica link: body over 1 MiB")
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	d := sha256.Sum256(body)
	want := "sha-256=" + base64.StdEncoding.EncodeToString(d[:])
	if !hmac.Equal([]byte(want), []byte(r.Header.Get(HeaderDigest))) {
		return errors.New("replica link: body does not match " + HeaderDigest)
	}
	return nil
}

func (c *Cluster) mac(r *http.Request) []byte {
	m := hmac.New(sha256.New, c.opts.Secret)
	io.WriteString(m, strings.Join([]string{
		r.Method, r.URL.RequestURI(), r.Header.Get(HeaderDate),
		r.Header.Get(HeaderDigest), r.Header.Get(HeaderFrom),
	}, "\n"))
	return m.Sum(nil)
}
