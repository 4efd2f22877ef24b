package federation

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/strictjson"
)

// Envelope is a signed message (spec §4.1): the payload's exact bytes and
// the origin node's signature over them.
type Envelope struct {
	V       int         `json:"v"`
	Payload string      `json:"payload"`
	Sig     EnvelopeSig `json:"sig"`
}

// EnvelopeSig is an envelope's signature: a key of the origin, ES256, r‖s.
type EnvelopeSig struct {
	Key   string `json:"key"`
	Alg   string `json:"alg"`
	Value string `json:"value"`
}

// Payload is the signed content of an envelope (spec §4.2).
type Payload struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Origin      string          `json:"origin"`
	Destination string          `json:"destination"`
	Sender      string          `json:"sender"`
	Conference  string          `json:"conference"`
	Created     int64           `json:"created"` // Unix milliseconds
	Expires     int64           `json:"expires"` // Unix milliseconds
	Content     json.RawMessage `json:"content"`
}

// Signer signs payload bytes with the node's current key and returns that
// key's fragment. *identity.Keyring is one.
type Signer interface {
	Sign(payload []byte) (keyID string, sig []byte, err error)
}

// KeyLookup finds the public key of a full key id "did#fragment".
type KeyLookup func(ctx context.Context, keyID string) (atcrypto.PublicKey, error)

const (
	envelopeVersion = 1
	envelopeAlg     = "ES256"
	// maxMessageLifetime is spec §4.2's cap on expires − created.
	maxMessageLifetime = 7 * 24 * time.Hour
	// maxCreatedAhead is how far in the future a created time may be.
	maxCreatedAhead = 300 * time.Second
	maxIDLength     = 64
)

var payloadFields = []string{"id", "type", "origin", "destination", "sender", "conference", "created", "expires", "content"}

// Seal signs payloadJSON as it is, byte for byte: no canonical form is
// needed because the receiver verifies the same bytes it then decodes.
func Seal(did string, s Signer, payloadJSON []byte) (Envelope, error) {
	if len(payloadJSON) == 0 {
		return Envelope{}, fmt.Errorf("seal: empty payload")
	}
	frag, sig, err := s.Sign(payloadJSON)
	if err != nil {
		return Envelope{}, fmt.Errorf("seal: %w", err)
	}
	return Envelope{
		V:       envelopeVersion,
		Payload: base64.RawURLEncoding.EncodeToString(payloadJSON),
		Sig: EnvelopeSig{
			Key:   did + "#" + frag,
			Alg:   envelopeAlg,
			Value: base64.RawURLEncoding.EncodeToString(sig),
		},
	}, nil
}

// MarshalPayload checks p against spec §4.2 and encodes it, so that this
// node never signs what a peer would refuse.
func MarshalPayload(p Payload) ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("marshal payload: %w", err)
	}
	if _, err := DecodePayload(b); err != nil {
		return nil, fmt.Errorf("marshal payload: %w", err)
	}
	return b, nil
}

// maxRelayedPayload bounds the payload string of the signal a
// conference.relay carries. The signal's envelope is a string of the relay's
// payload, and a chat line of 4000 bytes, JSON-escaped and in base64url, is
// far longer than the ordinary 4096 (spec §4.3).
const maxRelayedPayload = 64 << 10

// maxPayloadString is the base64url length of a 1 MiB payload.
const maxPayloadString = (1<<20)*4/3 + 4

// DecodeEnvelope decodes an envelope strictly (spec §4.1, §4.3). It checks
// the form of every field but not the signature: see Open.
func DecodeEnvelope(data []byte) (Envelope, error) {
	var e Envelope
	// The payload string carries a whole message, bounded by the body cap;
	// the strings inside the payload keep the ordinary limit.
	if err := strictjson.Decode(data, &e, strictjson.Limits{MaxString: maxPayloadString}); err != nil {
		return Envelope{}, httpapi.BadRequest("envelope: %w", err)
	}
	if err := strictjson.Require(data, "v", "payload", "sig"); err != nil {
		return Envelope{}, httpapi.BadRequest("envelope: %w", err)
	}
	switch {
	case len(e.Sig.Key) > 512 || len(e.Sig.Value) > 512:
		return Envelope{}, httpapi.BadRequest("envelope: sig.key and sig.value must be at most 512 bytes")
	case e.V != envelopeVersion:
		return Envelope{}, httpapi.BadRequest("envelope: version %d, expected %d", e.V, envelopeVersion)
	case e.Sig.Alg != envelopeAlg:
		return Envelope{}, httpapi.BadRequest("envelope: sig.alg %q, expected %q", e.Sig.Alg, envelopeAlg)
	}
	if _, _, ok := cutKeyID(e.Sig.Key); !ok {
		return Envelope{}, httpapi.BadRequest("envelope: sig.key %q is not of the form did#fragment", e.Sig.Key)
	}
	if _, err := e.PayloadBytes(); err != nil {
		return Envelope{}, err
	}
	if _, err := e.sigBytes(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// PayloadBytes returns the exact signed bytes.
func (e Envelope) PayloadBytes() ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(e.Payload)
	if err != nil {
		return nil, httpapi.BadRequest("envelope: payload is not unpadded base64url: %w", err)
	}
	if len(b) == 0 {
		return nil, httpapi.BadRequest("envelope: empty payload")
	}
	return b, nil
}

func (e Envelope) sigBytes() ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(e.Sig.Value)
	if err != nil {
		return nil, httpapi.BadRequest("envelope: sig.value is not unpadded base64url: %w", err)
	}
	if len(b) != 64 {
		return nil, httpapi.BadRequest("envelope: sig.value is %d bytes, expected 64 (r‖s)", len(b))
	}
	return b, nil
}

// KeyDID is the DID part of sig.key, or "" when it has none.
func (e Envelope) KeyDID() string {
	did, _, ok := strings.Cut(e.Sig.Key, "#")
	if !ok {
		return ""
	}
	return did
}

// Verify checks the signature with a P-256 key. atcrypto refuses high-S
// signatures, so each payload has exactly one valid signature per key and
// nobody can mint a second envelope for the same message.
func (e Envelope) Verify(pub atcrypto.PublicKey) error {
	// DecodeEnvelope checks these for a request body; an envelope carried
	// inside a payload (a record, a relayed signal) is checked here.
	if e.V != envelopeVersion || e.Sig.Alg != envelopeAlg {
		return httpapi.BadRequest("envelope: version %d and sig.alg %q, expected %d and %q", e.V, e.Sig.Alg, envelopeVersion, envelopeAlg)
	}
	if _, ok := pub.(*atcrypto.PublicKeyP256); !ok {
		return httpapi.Unauthorized("key %s is not a P-256 key", e.Sig.Key)
	}
	payload, err := e.PayloadBytes()
	if err != nil {
		return err
	}
	sig, err := e.sigBytes()
	if err != nil {
		return err
	}
	if err := pub.HashAndVerify(payload, sig); err != nil {
		return httpapi.Unauthorized("envelope signature does not verify with %s: %w", e.Sig.Key, err)
	}
	return nil
}

// Open decodes and checks an envelope's payload, then verifies its
// signature with the key that sig.key names, which must belong to the
// payload's origin. It returns the payload and its exact bytes. Freshness
// needs a clock: see Payload.CheckFresh.
func Open(ctx context.Context, e Envelope, keys KeyLookup) (Payload, []byte, error) {
	b, err := e.PayloadBytes()
	if err != nil {
		return Payload{}, nil, err
	}
	p, err := DecodePayload(b)
	if err != nil {
		return Payload{}, nil, err
	}
	if e.KeyDID() != p.Origin {
		return Payload{}, nil, httpapi.Unauthorized("envelope signed by %q for a payload of origin %s", e.Sig.Key, p.Origin)
	}
	pub, err := keys(ctx, e.Sig.Key)
	if err != nil {
		if _, ok := err.(*httpapi.Error); ok {
			return Payload{}, nil, err
		}
		return Payload{}, nil, httpapi.Unauthorized("key %s: %w", e.Sig.Key, err)
	}
	if err := e.Verify(pub); err != nil {
		return Payload{}, nil, err
	}
	return p, b, nil
}

// DecodePayload decodes payload bytes strictly and checks every field rule
// of spec §4.2 that needs no clock and no state.
func DecodePayload(b []byte) (Payload, error) {
	var p Payload
	// Trunk messages carry an SDP, longer than the ordinary string limit;
	// every other type is held to it (spec §4.3).
	if err := strictjson.Decode(b, &p, strictjson.Limits{MaxString: maxSDP}); err != nil {
		return Payload{}, httpapi.BadRequest("payload: %w", err)
	}
	switch p.Type {
	case TypeTrunkOffer, TypeTrunkAnswer:
	case TypeRelay:
		if err := strictjson.Check(b, strictjson.Limits{MaxString: maxRelayedPayload}); err != nil {
			return Payload{}, httpapi.BadRequest("payload: %w", err)
		}
	default:
		if err := strictjson.Check(b, strictjson.Limits{}); err != nil {
			return Payload{}, httpapi.BadRequest("payload: %w", err)
		}
	}
	if err := strictjson.Require(b, payloadFields...); err != nil {
		return Payload{}, httpapi.BadRequest("payload: %w", err)
	}
	if err := p.validate(); err != nil {
		return Payload{}, err
	}
	return p, nil
}

func (p Payload) validate() error {
	switch {
	case !validMessageID(p.ID):
		return httpapi.BadRequest("payload: id %q must be 1 to %d of [A-Za-z0-9_-]", p.ID, maxIDLength)
	case !knownType(p.Type):
		return httpapi.BadRequest("payload: unknown type %q", p.Type)
	case !validDID(p.Origin):
		return httpapi.BadRequest("payload: origin %q is not a DID", p.Origin)
	case !validDID(p.Destination):
		return httpapi.BadRequest("payload: destination %q is not a DID", p.Destination)
	case p.Conference != "" && !validConferenceID(p.Conference):
		return httpapi.BadRequest("payload: conference %q is not a conference id", p.Conference)
	case p.Created <= 0:
		return httpapi.BadRequest("payload: created %d is not a time", p.Created)
	case p.Expires <= p.Created:
		return httpapi.BadRequest("payload: expires %d is not after created %d", p.Expires, p.Created)
	case p.Expires-p.Created > maxMessageLifetime.Milliseconds():
		return httpapi.BadRequest("payload: expires is more than %s after created", maxMessageLifetime)
	}
	if p.Sender != p.Origin {
		// A node speaks only for itself and its own users (spec §4.2).
		if validDID(p.Sender) {
			return httpapi.Forbidden("payload: sender %s is another node than origin %s", p.Sender, p.Origin)
		}
		_, did, err := ParseUserRef(p.Sender)
		if err != nil {
			return httpapi.BadRequest("payload: sender: %w", err)
		}
		if did != p.Origin {
			return httpapi.Forbidden("payload: sender %s is not of origin %s", p.Sender, p.Origin)
		}
	}
	content := bytes.TrimLeft(p.Content, " \t\r\n")
	if len(content) == 0 || content[0] != '{' {
		return httpapi.BadRequest("payload: content is not a JSON object")
	}
	return nil
}

// CheckFresh refuses a payload that has expired or claims to be made more
// than 300 s ahead of now (spec §4.2).
func (p Payload) CheckFresh(now time.Time) error {
	ms := now.UnixMilli()
	if p.Expires <= ms {
		return httpapi.BadRequest("message %s expired at %d", p.ID, p.Expires)
	}
	if p.Created > ms+maxCreatedAhead.Milliseconds() {
		return httpapi.BadRequest("message %s is created %d ms in the future", p.ID, p.Created-ms)
	}
	return nil
}

func knownType(t string) bool {
	switch t {
	case TypeLog, TypeReceipt, TypeRoster, TypeRecords, TypeSignal, TypeRelay, TypeTrunkOffer, TypeTrunkAnswer:
		return true
	}
	return isEventType(t)
}

func validMessageID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

var messageIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewMessageID returns 128 random bits as 26 lower-case base32 characters.
func NewMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return messageIDEncoding.EncodeToString(b[:])
}

// HashHex is the lower-case hex SHA-256 of b, the hash used by log links.
func HashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
