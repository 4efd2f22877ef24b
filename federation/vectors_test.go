package federation

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/httpapi"
)

var updateVectors = flag.Bool("update", false, "regenerate spec/vectors")

const (
	vectorDir = "../spec/vectors"
	schemaDir = "../spec/schemas"
)

type vectorKeys struct {
	Warning          string `json:"warning"`
	DID              string `json:"did"`
	KeyID            string `json:"key_id"`
	PrivateMultibase string `json:"private_multibase"`
	PublicMultibase  string `json:"public_multibase"`
	Created          string `json:"created"`
}

type validVector struct {
	Description string          `json:"description"`
	Envelope    json.RawMessage `json:"envelope"`
	Payload     json.RawMessage `json:"payload"`
	PayloadHash string          `json:"payload_sha256"`
}

type invalidVector struct {
	Name           string `json:"name"`
	Envelope       string `json:"envelope"`
	ExpectedStatus int    `json:"expected_status"`
	Reason         string `json:"reason"`
}

type httpSigVector struct {
	Description   string            `json:"description"`
	Method        string            `json:"method"`
	URL           string            `json:"url"`
	Headers       map[string]string `json:"headers"`
	Body          string            `json:"body"`
	SigningString string            `json:"signing_string"`
	KeyID         string            `json:"key_id"`
}

// vectorKeyring loads the fixed test key, or makes one when regenerating
// and none exists yet.
func vectorKeyring(t *testing.T) (*identity.Keyring, vectorKeys) {
	t.Helper()
	var vk vectorKeys
	data, err := os.ReadFile(filepath.Join(vectorDir, "keys.json"))
	if os.IsNotExist(err) && *updateVectors {
		st := &memKeyStorage{}
		kr, err := identity.GenerateKeyring(context.Background(), st, time.Date(2025, 11, 25, 18, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		var stored struct {
			Keys []struct {
				ID               string `json:"id"`
				PrivateMultibase string `json:"private_multibase"`
				Created          string `json:"created"`
			} `json:"keys"`
		}
		if err := json.Unmarshal(st.data, &stored); err != nil {
			t.Fatal(err)
		}
		info := kr.Keys(time.Now())[0]
		vk = vectorKeys{
			Warning:          "TEST KEY ONLY. It is public: never use it for a real node.",
			DID:              testOrigin,
			KeyID:            stored.Keys[0].ID,
			PrivateMultibase: stored.Keys[0].PrivateMultibase,
			PublicMultibase:  info.PublicMultibase,
			Created:          stored.Keys[0].Created,
		}
		writeVector(t, "keys.json", vk)
		return kr, vk
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &vk); err != nil {
		t.Fatal(err)
	}
	stored := fmt.Sprintf(`{"version":1,"keys":[{"id":%q,"private_multibase":%q,"created":%q}]}`, vk.KeyID, vk.PrivateMultibase, vk.Created)
	kr, err := identity.LoadKeyring(context.Background(), &memKeyStorage{data: []byte(stored)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return kr, vk
}

func writeVector(t *testing.T, name string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vectorDir, name), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readVector(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestGenerateVectors rewrites spec/vectors with -update. ECDSA signatures
// are randomized, so every run gives new bytes: run it only when the
// vectors must change.
func TestGenerateVectors(t *testing.T) {
	if !*updateVectors {
		t.Skip("run with -update to regenerate spec/vectors")
	}
	kr, vk := vectorKeyring(t)
	p := testPayload()
	// An event is addressed to the conference's host, which made this one
	// (spec §6.1).
	p.Destination = p.Origin
	payload, err := MarshalPayload(p)
	if err != nil {
		t.Fatal(err)
	}
	env, err := Seal(vk.DID, kr, payload)
	if err != nil {
		t.Fatal(err)
	}
	envJSON, _ := json.Marshal(env)
	writeVector(t, "envelope-valid.json", validVector{
		Description: "A conference.invite sealed with the key of keys.json: the host ministry.example invites agency.example, and the event is addressed to the host itself (spec §6.1). Its created and expires are in the past: check freshness separately.",
		Envelope:    envJSON,
		Payload:     payload,
		PayloadHash: HashHex(payload),
	})

	sealRaw := func(did string, payload string) string {
		e, err := Seal(did, kr, []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(e)
		return string(b)
	}
	replacePayload := func(old, new string) string { return sealRaw(vk.DID, strings.Replace(string(payload), old, new, 1)) }
	field := func(name, raw string) string {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(payload, &m)
		m[name] = json.RawMessage(raw)
		b, _ := json.Marshal(m)
		return sealRaw(vk.DID, string(b))
	}
	tampered := env
	tampered.Payload = base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte("alice@"), []byte("mallory@"), 1))
	tamperedJSON, _ := json.Marshal(tampered)
	highS := env
	sig, _ := base64.RawURLEncoding.DecodeString(env.Sig.Value)
	s := new(big.Int).Sub(elliptic.P256().Params().N, new(big.Int).SetBytes(sig[32:]))
	highS.Sig.Value = base64.RawURLEncoding.EncodeToString(append(sig[:32:32], s.FillBytes(make([]byte, 32))...))
	highSJSON, _ := json.Marshal(highS)
	unknownKey := env
	unknownKey.Sig.Key = vk.DID + "#k-aaaaaaaa"
	unknownKeyJSON, _ := json.Marshal(unknownKey)
	envText := string(envJSON)

	writeVector(t, "envelope-invalid.json", []invalidVector{
		{"tampered payload", string(tamperedJSON), 401, "the payload bytes differ from those signed"},
		{"high-S signature", string(highSJSON), 401, "the signature is the high-S twin of a valid one (spec §4.1: low S)"},
		{"key of another DID", sealRaw("did:web:agency.example", string(payload)), 401, "sig.key's DID is not the payload's origin"},
		{"unknown key", string(unknownKeyJSON), 401, "sig.key names a key the origin does not publish"},
		{"envelope duplicate key", strings.Replace(envText, `{"v":1,`, `{"v":1,"v":1,`, 1), 400, "duplicate key v"},
		{"envelope case-variant key", strings.Replace(envText, `{"v":1,`, `{"v":1,"V":1,`, 1), 400, "keys v and V differ only in case"},
		{"envelope float version", strings.Replace(envText, `{"v":1,`, `{"v":1.0,`, 1), 400, "a number with a fraction"},
		{"envelope unknown field", strings.Replace(envText, `{"v":1,`, `{"v":1,"x":0,`, 1), 400, "unknown field x"},
		{"envelope version 2", strings.Replace(envText, `{"v":1,`, `{"v":2,`, 1), 400, "v must be 1"},
		{"envelope trailing data", envText + "{}", 400, "data after the top-level value"},
		{"payload duplicate key", replacePayload(`{"id":`, `{"id":"x","id":`), 400, "duplicate key id in the payload"},
		{"payload case-variant key", replacePayload(`{"id":`, `{"ID":"x","id":`), 400, "keys id and ID differ only in case"},
		{"payload float", field("created", "1764093600000.5"), 400, "created is not an integer"},
		{"payload beyond 2^53", field("expires", "9007199254740992"), 400, "expires is outside ±(2^53−1)"},
		{"payload invalid UTF-8", replacePayload("conference.invite", "conference.invite\xff"), 400, "invalid UTF-8 in the payload bytes"},
		{"payload deep nesting", field("content", `{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":1}}}}}}}}`), 400, "nested deeper than 8"},
		{"payload unknown field", field("extra", "true"), 400, "unknown field extra"},
		{"payload lifetime over 7 days", field("expires", "1764698400001"), 400, "expires − created over 7 days"},
		{"payload sender of another node", field("sender", `"bob@did:web:agency.example"`), 403, "sender is a user of another node than the origin"},
	})

	// The request carries a member's conference.accept to the host's inbox.
	var accept messageVector
	generateRuleVectors(t, kr, vk.DID)
	for _, m := range generateMessageVectors(t, kr, vk.DID) {
		if m.Type == TypeAccept {
			accept = m
		}
	}
	body := []byte(accept.Envelope)
	req, err := http.NewRequest(http.MethodPost, "https://agency.example/federation/v1/inbox", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	frag, priv, err := kr.CurrentECDSA()
	if err != nil {
		t.Fatal(err)
	}
	if err := SignRequest(req, body, vk.DID+"#"+frag, priv, time.Now()); err != nil {
		t.Fatal(err)
	}
	params, err := ParseSignatureHeader(req.Header.Get("Signature"))
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{}
	for _, h := range []string{"Host", "Date", "Digest", "Signature"} {
		headers[h] = req.Header.Get(h)
	}
	writeVector(t, "http-signature.json", httpSigVector{
		Description:   "One request signed as spec §3.1 says: ministry.example posts a member's conference.accept to the inbox of agency.example, the conference's host. ECDSA signatures are randomized: verify it, do not compare bytes. Its dates are in the past.",
		Method:        req.Method,
		URL:           req.URL.String(),
		Headers:       headers,
		Body:          string(body),
		SigningString: buildSigningString(t, req, params.Headers, params.Created, params.Expires),
		KeyID:         params.KeyID,
	})
}

func TestVectors(t *testing.T) {
	if *updateVectors {
		t.Skip("regenerating")
	}
	_, vk := vectorKeyring(t)
	pub, err := atcrypto.ParsePublicMultibase(vk.PublicMultibase)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(_ context.Context, keyID string) (atcrypto.PublicKey, error) {
		if keyID != vk.DID+"#"+vk.KeyID {
			return nil, fmt.Errorf("no key %s", keyID)
		}
		return pub, nil
	}
	schemas := compileSchemas(t)

	t.Run("valid envelope", func(t *testing.T) {
		var v validVector
		readVector(t, "envelope-valid.json", &v)
		env, err := DecodeEnvelope(v.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		p, raw, err := Open(context.Background(), env, lookup)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(t, raw, v.Payload) || HashHex(raw) != v.PayloadHash || p.Type != TypeInvite || p.Origin != vk.DID {
			t.Fatalf("payload %s (%s), vector %s (%s)", raw, HashHex(raw), v.Payload, v.PayloadHash)
		}
		validate(t, schemas["envelope"], v.Envelope)
		validate(t, schemas["payload"], raw)
	})

	t.Run("invalid envelopes", func(t *testing.T) {
		var cases []invalidVector
		readVector(t, "envelope-invalid.json", &cases)
		if len(cases) < 10 {
			t.Fatalf("only %d invalid vectors", len(cases))
		}
		for _, c := range cases {
			env, err := DecodeEnvelope([]byte(c.Envelope))
			if err == nil {
				_, _, err = Open(context.Background(), env, lookup)
			}
			var fe *httpapi.Error
			if !errors.As(err, &fe) || fe.Status != c.ExpectedStatus {
				t.Errorf("%s: got %v, want status %d (%s)", c.Name, err, c.ExpectedStatus, c.Reason)
			}
		}
	})

	t.Run("http signature", func(t *testing.T) {
		var v httpSigVector
		readVector(t, "http-signature.json", &v)
		req, err := http.NewRequest(v.Method, v.URL, strings.NewReader(v.Body))
		if err != nil {
			t.Fatal(err)
		}
		for k, val := range v.Headers {
			req.Header.Set(k, val)
		}
		p, err := ParseSignatureHeader(v.Headers["Signature"])
		if err != nil {
			t.Fatal(err)
		}
		if got := buildSigningString(t, req, p.Headers, p.Created, p.Expires); got != v.SigningString {
			t.Fatalf("signing string\n%s\nvector\n%s", got, v.SigningString)
		}
		want, err := parseDigest(req.Header)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256([]byte(v.Body)); !bytes.Equal(got[:], want) {
			t.Fatal("vector Digest does not match its body")
		}
		if err := checkLowS(p.Signature); err != nil {
			t.Fatalf("vector signature: %v", err)
		}
		ecPub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pub.UncompressedBytes())
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte(v.SigningString))
		if p.KeyID != v.KeyID || !ecdsa.VerifyASN1(ecPub, digest[:], p.Signature) {
			t.Fatal("vector signature does not verify")
		}
		digest[0] ^= 1
		if ecdsa.VerifyASN1(ecPub, digest[:], p.Signature) {
			t.Fatal("signature verifies for another signing string")
		}
	})

	t.Run("schemas", func(t *testing.T) {
		validate(t, schemas["receipt"], []byte(`{"message":"01JDX4G3Y3ZC9QK4W7A1B2C3D4","status":"accepted","seq":3}`))
		link := LinkPayload{Conference: "c-7g2xk4m9q3d8w1z5", Seq: 2, Prev: HashHex([]byte("a")), Event: HashHex([]byte("b")), Host: testOrigin, Created: 1764093600000}
		lb, _ := json.Marshal(link)
		validate(t, schemas["link"], lb)
		refused := map[string]string{
			"receipt": `{"message":"x","status":"maybe"}`,
			"link":    `{"conference":"c-7g2xk4m9q3d8w1z5","seq":1,"prev":"` + HashHex(nil) + `","event":"` + HashHex(nil) + `","host":"did:web:a.example","created":1}`,
			"payload": `{"id":"x"}`,
		}
		for name, doc := range refused {
			inst, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
			if err != nil {
				t.Fatal(err)
			}
			if schemas[name].Validate(inst) == nil {
				t.Errorf("%s schema accepted %s", name, doc)
			}
		}
	})
}

func compileSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	out := map[string]*jsonschema.Schema{}
	// Every schema is added before any is compiled: the payload schema
	// refers to the envelope and receipt schemas.
	names := []string{"envelope", "payload", "link", "receipt", "did-document"}
	id := func(name string) string { return "https://entente.example/spec/schemas/" + name + ".schema.json" }
	for _, name := range names {
		f, err := os.Open(filepath.Join(schemaDir, name+".schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.AddResource(id(name), doc); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		var err error
		if out[name], err = c.Compile(id(name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return out
}

func validate(t *testing.T, s *jsonschema.Schema, doc []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(inst); err != nil {
		t.Fatalf("%s does not match its schema: %v", doc, err)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}
