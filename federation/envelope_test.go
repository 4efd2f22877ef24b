package federation

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"

	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/httpapi"
)

const (
	testOrigin = "did:web:ministry.example"
	testDest   = "did:web:agency.example"
)

func newTestKeyring(t *testing.T) *identity.Keyring {
	t.Helper()
	kr, err := identity.GenerateKeyring(context.Background(), &memKeyStorage{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// lookupFor answers key lookups for origin's current key only.
func lookupFor(t *testing.T, kr *identity.Keyring, origin string) KeyLookup {
	t.Helper()
	info := kr.Keys(time.Now())[0]
	pub, err := atcrypto.ParsePublicMultibase(info.PublicMultibase)
	if err != nil {
		t.Fatal(err)
	}
	return func(_ context.Context, keyID string) (atcrypto.PublicKey, error) {
		if keyID != origin+"#"+info.ID {
			return nil, fmt.Errorf("no key %s", keyID)
		}
		return pub, nil
	}
}

func testPayload() Payload {
	return Payload{
		ID:          "01JDX4G3Y3ZC9QK4W7A1B2C3D4",
		Type:        TypeInvite,
		Origin:      testOrigin,
		Destination: testDest,
		Sender:      "alice@" + testOrigin,
		Conference:  "c-7g2xk4m9q3d8w1z5",
		Created:     1764093600000,
		Expires:     1764180000000,
		Content:     json.RawMessage(`{"node":"did:web:agency.example","users":[]}`),
	}
}

func sealTest(t *testing.T, kr *identity.Keyring, p Payload) Envelope {
	t.Helper()
	b, err := MarshalPayload(p)
	if err != nil {
		t.Fatal(err)
	}
	env, err := Seal(p.Origin, kr, b)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var fe *httpapi.Error
	if !errors.As(err, &fe) || fe.Status != status {
		t.Fatalf("error %v, want status %d", err, status)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	kr := newTestKeyring(t)
	p := testPayload()
	env := sealTest(t, kr, p)
	data, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	if got != env || got.KeyDID() != testOrigin {
		t.Fatalf("decoded %+v, want %+v", got, env)
	}
	opened, raw, err := Open(context.Background(), got, lookupFor(t, kr, testOrigin))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := MarshalPayload(p)
	if string(raw) != string(want) || opened.ID != p.ID || opened.Sender != p.Sender || string(opened.Content) != string(p.Content) {
		t.Fatalf("opened %+v %s", opened, raw)
	}
	if HashHex(raw) != HashHex(want) || len(HashHex(raw)) != 64 {
		t.Fatal("hash of payload bytes")
	}
}

func TestEnvelopeTamperedPayload(t *testing.T) {
	kr := newTestKeyring(t)
	env := sealTest(t, kr, testPayload())
	b, _ := env.PayloadBytes()
	tampered := strings.Replace(string(b), "alice@", "mallory@", 1)
	env.Payload = base64.RawURLEncoding.EncodeToString([]byte(tampered))
	_, _, err := Open(context.Background(), env, lookupFor(t, kr, testOrigin))
	wantStatus(t, err, http.StatusUnauthorized)
}

// TestEnvelopeHighS checks that the second, high-S form of a valid
// signature is refused, so that a message has one signature per key.
func TestEnvelopeHighS(t *testing.T) {
	kr := newTestKeyring(t)
	env := sealTest(t, kr, testPayload())
	sig, _ := base64.RawURLEncoding.DecodeString(env.Sig.Value)
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	high := new(big.Int).Sub(n, s).FillBytes(make([]byte, 32))
	env.Sig.Value = base64.RawURLEncoding.EncodeToString(append(sig[:32:32], high...))

	lookup := lookupFor(t, kr, testOrigin)
	pub, _ := lookup(context.Background(), env.Sig.Key)
	payload, _ := env.PayloadBytes()
	if err := pub.(*atcrypto.PublicKeyP256).HashAndVerifyLenient(payload, append(sig[:32:32], high...)); err != nil {
		t.Fatalf("the high-S form should be mathematically valid: %v", err)
	}
	_, _, err := Open(context.Background(), env, lookup)
	wantStatus(t, err, http.StatusUnauthorized)
}

func TestEnvelopeKeyOfAnotherDID(t *testing.T) {
	kr := newTestKeyring(t)
	p := testPayload()
	b, _ := MarshalPayload(p)
	env, err := Seal("did:web:evil.example", kr, b)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Open(context.Background(), env, func(context.Context, string) (atcrypto.PublicKey, error) {
		t.Fatal("key looked up for a mismatched origin")
		return nil, nil
	})
	wantStatus(t, err, http.StatusUnauthorized)
}

func TestEnvelopeUnknownKey(t *testing.T) {
	kr := newTestKeyring(t)
	env := sealTest(t, kr, testPayload())
	_, _, err := Open(context.Background(), env, lookupFor(t, newTestKeyring(t), testOrigin))
	wantStatus(t, err, http.StatusUnauthorized)
}

func TestDecodeEnvelopeStrict(t *testing.T) {
	kr := newTestKeyring(t)
	env := sealTest(t, kr, testPayload())
	valid, _ := json.Marshal(env)
	// fields of a valid envelope, to splice into malformed ones
	v := func(s string) string {
		return strings.NewReplacer("PAYLOAD", env.Payload, "KEY", env.Sig.Key, "VALUE", env.Sig.Value).Replace(s)
	}
	tests := []struct{ name, in, reason string }{
		{"duplicate key", v(`{"v":1,"v":1,"payload":"PAYLOAD","sig":{"key":"KEY","alg":"ES256","value":"VALUE"}}`), `duplicate key "v"`},
		{"case-variant keys", v(`{"v":1,"V":1,"payload":"PAYLOAD","sig":{"key":"KEY","alg":"ES256","value":"VALUE"}}`), `differ only in case`},
		{"case-variant field alone", v(`{"v":1,"Payload":"PAYLOAD","sig":{"key":"KEY","alg":"ES256","value":"VALUE"}}`), `unknown field "Payload"`},
		{"float version", v(`{"v":1.0,"payload":"PAYLOAD","sig":{"key":"KEY","alg":"ES256","value":"VALUE"}}`), "not an integer"},
		{"2^53", v(`{"v":9007199254740993,"payload":"PAYLOAD","sig":{"key":"KEY","alg":"ES256","value":"VALUE"}}`), "outside ±(2^53−1)"},
		{"invalid UTF-8", v("{\"v\":1,\"payload\":\"PAYLOAD\",\"sig\":{\"key\":\"KEY\",\"alg\":\"ES256\xff\",\"value\":\"VALUE\"}}"), "invalid UTF-8"},
		{"byte order mark", "\xef\xbb\xbf" + string(valid), "byte order mark"},
		{"deep nesting", v(`{"v":1,"payload":"PAYLOAD","sig":{"key":"KEY","alg":"ES256","value":"VALUE","x":[[[[[[[[1]]]]]]]]}}`), "nested deeper than 8"},
		{"unknown field", v(`{"v":1,"payload":"PAYLOAD","sig":{"key":"KEY","alg":"ES256","value":"VALUE"},"extra":true}`), `unknown field "extra"`},
		{"unknown sig field", v(`{"v":1,"payload":"PAYLOAD","sig":{"key":"KEY","alg":"ES256","value":"VALUE","kid":"x"}}`), `unknown field "sig.kid"`},
		{"oversized sig key", v(`{"v":1,"payload":"PAYLOAD","sig":{"key":"did:web:x#` + strings.Repeat("a", 5000) + `","alg":"ES256","value":"VALUE"}}`), "sig.key and sig.value must be at most 512 bytes"},
		{"oversized payload", v(`{"v":1,"payload":"` + strings.Repeat("A", 1500000) + `","sig":{"key":"KEY","alg":"ES256","value":"VALUE"}}`), "string longer than"},
		{"trailing data", string(valid) + "{}", "data after the top-level value"},
		{"missing sig", v(`{"v":1,"payload":"PAYLOAD"}`), `missing field "sig"`},
		{"version 2", v(`{"v":2,"payload":"PAYLOAD","sig":{"key":"KEY","alg":"ES256","value":"VALUE"}}`), "version 2"},
		{"alg none", v(`{"v":1,"payload":"PAYLOAD","sig":{"key":"KEY","alg":"none","value":"VALUE"}}`), `sig.alg "none"`},
		{"key without fragment", v(`{"v":1,"payload":"PAYLOAD","sig":{"key":"did:web:ministry.example","alg":"ES256","value":"VALUE"}}`), "did#fragment"},
		{"padded payload", v(`{"v":1,"payload":"PAYLOAD==","sig":{"key":"KEY","alg":"ES256","value":"VALUE"}}`), "unpadded base64url"},
		{"standard base64 value", v(`{"v":1,"payload":"PAYLOAD","sig":{"key":"KEY","alg":"ES256","value":"` + strings.Repeat("+", 86) + `"}}`), "unpadded base64url"},
		{"short signature", v(`{"v":1,"payload":"PAYLOAD","sig":{"key":"KEY","alg":"ES256","value":"AAAA"}}`), "3 bytes, expected 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEnvelope([]byte(tt.in))
			wantStatus(t, err, http.StatusBadRequest)
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error %q does not say %q", err, tt.reason)
			}
		})
	}
}

// TestDecodePayloadStrict seals each malformed payload with a valid key, so
// only the payload rules can refuse it.
func TestDecodePayloadStrict(t *testing.T) {
	kr := newTestKeyring(t)
	base, _ := MarshalPayload(testPayload())
	field := func(name, value string) string {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(base, &m)
		if value == "" {
			delete(m, name)
		} else {
			m[name] = json.RawMessage(value)
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	tests := []struct {
		name, payload string
		status        int
		reason        string
	}{
		{"duplicate key", strings.Replace(string(base), `{"id"`, `{"id":"x","id"`, 1), 400, `duplicate key "id"`},
		{"case-variant keys", strings.Replace(string(base), `{"id"`, `{"ID":"x","id"`, 1), 400, "differ only in case"},
		{"case-variant field alone", strings.Replace(string(base), `"id"`, `"Id"`, 1), 400, `unknown field "Id"`},
		{"float created", field("created", "1764093600000.0"), 400, "not an integer"},
		{"exponent expires", field("expires", "1.7e12"), 400, "not an integer"},
		{"2^53 expires", field("expires", "9007199254740992"), 400, "outside ±(2^53−1)"},
		{"invalid UTF-8", strings.Replace(string(base), "conference.invite", "conference.invite\xc3", 1), 400, "invalid UTF-8"},
		{"deep content", field("content", `{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":1}}}}}}}}`), 400, "nested deeper than 8"},
		{"long content array", field("content", `{"users":[`+strings.TrimSuffix(strings.Repeat(`"a",`, 257), ",")+`]}`), 400, "array longer than 256"},
		{"unknown field", field("extra", `1`), 400, `unknown field "extra"`},
		{"missing conference", field("conference", ""), 400, `missing field "conference"`},
		{"missing content", field("content", ""), 400, `missing field "content"`},
		{"content not an object", field("content", `[]`), 400, "content is not a JSON object"},
		{"bad id", field("id", `"a/b"`), 400, "id"},
		{"id too long", field("id", `"`+strings.Repeat("a", 65)+`"`), 400, "id"},
		{"unknown type", field("type", `"conference.explode"`), 400, "unknown type"},
		{"origin not a DID", field("origin", `"https://ministry.example"`), 400, "origin"},
		{"destination not a DID", field("destination", `"agency"`), 400, "destination"},
		{"conference id form", field("conference", `"c-SHORT"`), 400, "conference"},
		{"expires before created", field("expires", "1764093500000"), 400, "not after created"},
		{"lifetime over 7 days", field("expires", "1764698400001"), 400, "more than 168h0m0s after created"},
		{"malformed sender", field("sender", `"Alice@did:web:ministry.example"`), 400, "sender"},
		{"sender of another node", field("sender", `"alice@did:web:agency.example"`), 403, "is not of origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := Seal(testOrigin, kr, []byte(tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = Open(context.Background(), env, lookupFor(t, kr, testOrigin))
			wantStatus(t, err, tt.status)
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error %q does not say %q", err, tt.reason)
			}
		})
	}
	// The origin itself may be the sender, and conference may be empty.
	p := testPayload()
	p.Sender, p.Conference, p.Type = testOrigin, "", TypeReceipt
	if _, err := MarshalPayload(p); err != nil {
		t.Fatalf("node message refused: %v", err)
	}
}

func TestPayloadCheckFresh(t *testing.T) {
	p := testPayload()
	created := time.UnixMilli(p.Created)
	for _, tt := range []struct {
		now    time.Time
		status int
	}{
		{created, 0},
		{created.Add(-300 * time.Second), 0},
		{created.Add(-301 * time.Second), 400},
		{time.UnixMilli(p.Expires - 1), 0},
		{time.UnixMilli(p.Expires), 400},
	} {
		err := p.CheckFresh(tt.now)
		if tt.status == 0 && err != nil {
			t.Errorf("%v: %v", tt.now, err)
		} else if tt.status != 0 {
			wantStatus(t, err, tt.status)
		}
	}
}

func TestUserRefAndIDs(t *testing.T) {
	local, did, err := ParseUserRef(UserRef("alice.b_c-1", testOrigin))
	if err != nil || local != "alice.b_c-1" || did != testOrigin {
		t.Fatalf("%q %q %v", local, did, err)
	}
	for _, bad := range []string{"alice", "@did:web:x", "Alice@did:web:x", "alice@web:x", "alice@did:web:", "a@b@did:web:x", strings.Repeat("a", 65) + "@did:web:x", "alice@did:web:x#k"} {
		if _, _, err := ParseUserRef(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	seen := map[string]bool{}
	for range 100 {
		id := NewMessageID()
		if len(id) != 26 || strings.ToLower(id) != id || !validMessageID(id) || seen[id] {
			t.Fatalf("message id %q", id)
		}
		seen[id] = true
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"v":1,"payload":"eyJpZCI6IngifQ","sig":{"key":"did:web:a.example#k-1","alg":"ES256","value":"` + strings.Repeat("A", 86) + `"}}`))
	f.Add([]byte(`{"v":1,"v":1}`))
	f.Add([]byte(`{"V":1.5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := DecodeEnvelope(data)
		if err != nil {
			var fe *httpapi.Error
			if !errors.As(err, &fe) || fe.Status != http.StatusBadRequest {
				t.Fatalf("refusal %v is not a 400", err)
			}
			return
		}
		if !json.Valid(data) || env.V != 1 || env.Sig.Alg != "ES256" || env.KeyDID() == "" {
			t.Fatalf("accepted %q as %+v", data, env)
		}
		b, err := env.PayloadBytes()
		if err != nil {
			t.Fatalf("accepted envelope has an undecodable payload: %v", err)
		}
		if _, err := DecodePayload(b); err != nil {
			if _, ok := err.(*httpapi.Error); !ok {
				t.Fatalf("payload refusal %v is not an *httpapi.Error", err)
			}
		}
	})
}
