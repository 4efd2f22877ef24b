package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
)

const testDID = "did:web:meet.example.gov"

func TestBuildDocumentExact(t *testing.T) {
	keys := []KeyInfo{
		{ID: "k-current1", PublicMultibase: "zDnaeCurrent", Created: t0},
		{ID: "k-previous", PublicMultibase: "zDnaePrevious", Created: t0.Add(-time.Hour), RetireAt: t0.Add(time.Hour)},
	}
	got, err := BuildDocument(testDID, keys, "https://meet.example.gov/federation")
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "@context": [
    "https://www.w3.org/ns/did/v1",
    "https://w3id.org/security/multikey/v1"
  ],
  "id": "did:web:meet.example.gov",
  "verificationMethod": [
    {
      "id": "did:web:meet.example.gov#k-current1",
      "type": "Multikey",
      "controller": "did:web:meet.example.gov",
      "publicKeyMultibase": "zDnaeCurrent"
    },
    {
      "id": "did:web:meet.example.gov#k-previous",
      "type": "Multikey",
      "controller": "did:web:meet.example.gov",
      "publicKeyMultibase": "zDnaePrevious"
    }
  ],
  "assertionMethod": [
    "did:web:meet.example.gov#k-current1"
  ],
  "service": [
    {
      "id": "#entente_federation",
      "type": "EntenteFederation",
      "serviceEndpoint": "https://meet.example.gov/federation"
    }
  ]
}
`
	if string(got) != want {
		t.Errorf("document:\n%s\nwant:\n%s", got, want)
	}
}

func TestBuildDocumentRefuses(t *testing.T) {
	current := KeyInfo{ID: "k-a", PublicMultibase: "zDnaeA"}
	cases := []struct {
		name     string
		did      string
		keys     []KeyInfo
		endpoint string
		want     string
	}{
		{"not did:web", "did:plc:abc", []KeyInfo{current}, "https://x.gov/f",
			`build DID document: DID "did:plc:abc": not a did:web DID`},
		{"http endpoint", testDID, []KeyInfo{current}, "http://x.gov/f",
			`build DID document: federation endpoint: endpoint "http://x.gov/f": scheme must be https`},
		{"no current key", testDID, []KeyInfo{{ID: "k-a", PublicMultibase: "zDnaeA", RetireAt: t0}}, "https://x.gov/f",
			"build DID document: 0 current keys given, expected exactly one"},
		{"no keys", testDID, nil, "https://x.gov/f",
			"build DID document: 0 current keys given, expected exactly one"},
		{"key without id", testDID, []KeyInfo{{PublicMultibase: "zDnaeA"}}, "https://x.gov/f",
			`build DID document: key "" has no id or public key`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildDocument(tc.did, tc.keys, tc.endpoint)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDocumentHandler(t *testing.T) {
	kr, err := GenerateKeyring(context.Background(), &failingStorage{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := kr.DocumentHandler(testDID, "https://meet.example.gov/federation")
	want, err := BuildDocument(testDID, kr.Keys(time.Now()), "https://meet.example.gov/federation")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method     string
		status     int
		body       string
		typ, allow string
	}{
		{http.MethodGet, http.StatusOK, string(want), "application/did+json", ""},
		{http.MethodHead, http.StatusOK, "", "application/did+json", ""},
		{http.MethodPost, http.StatusMethodNotAllowed, "method not allowed\n", "text/plain; charset=utf-8", "GET, HEAD"},
		{http.MethodPut, http.StatusMethodNotAllowed, "method not allowed\n", "text/plain; charset=utf-8", "GET, HEAD"},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, "/.well-known/did.json", nil))
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status || string(body) != tc.body ||
				res.Header.Get("Content-Type") != tc.typ || res.Header.Get("Allow") != tc.allow {
				t.Errorf("got %d %q type %q allow %q", res.StatusCode, body, res.Header.Get("Content-Type"), res.Header.Get("Allow"))
			}
		})
	}
}

// docFixture builds DID documents for parse tests with one P-256 and one
// K-256 key available.
type docFixture struct {
	p256, k256 string
}

func newDocFixture(t testing.TB) docFixture {
	t.Helper()
	p, err := atcrypto.GeneratePrivateKeyP256()
	if err != nil {
		t.Fatal(err)
	}
	k, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	pp, err := p.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := k.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return docFixture{p256: pp.Multibase(), k256: kp.Multibase()}
}

func vm(id, controller, mb string) string {
	return fmt.Sprintf(`{"id":%q,"type":"Multikey","controller":%q,"publicKeyMultibase":%q}`, id, controller, mb)
}

func svc(id, typ, endpoint string) string {
	return fmt.Sprintf(`{"id":%q,"type":%q,"serviceEndpoint":%q}`, id, typ, endpoint)
}

func doc(id string, vms, svcs []string) string {
	return fmt.Sprintf(`{"@context":["https://www.w3.org/ns/did/v1"],"id":%q,"verificationMethod":[%s],"service":[%s]}`,
		id, strings.Join(vms, ","), strings.Join(svcs, ","))
}

func TestParseDocument(t *testing.T) {
	f := newDocFixture(t)
	okVM := vm(testDID+"#k-1", testDID, f.p256)
	okSvc := svc("#entente_federation", "EntenteFederation", "https://meet.example.gov/federation")
	cases := []struct {
		name, body   string
		allowPrivate bool
		reason       string
		err          string
	}{
		{name: "valid", body: doc(testDID, []string{okVM}, []string{okSvc})},
		{name: "valid with K-256 key ignored", body: doc(testDID, []string{vm(testDID+"#k-k", testDID, f.k256), okVM}, []string{okSvc})},
		{name: "relative key id", body: doc(testDID, []string{vm("#k-1", testDID, f.p256)}, []string{okSvc})},
		{name: "truncated", body: `{"id":`, reason: "malformed JSON", err: "unexpected EOF"},
		{name: "BOM", body: "\uFEFF" + doc(testDID, []string{okVM}, []string{okSvc}), reason: "malformed JSON",
			err: "invalid character 'ï' looking for beginning of value"},
		{name: "invalid UTF-8", body: `{"id":"did:web:meet.example.gov","x":"` + "\xff" + `"}`, reason: "malformed JSON", err: "invalid UTF-8"},
		{name: "duplicate id", body: `{"id":"did:web:evil.example","id":"did:web:meet.example.gov"}`, reason: "malformed JSON", err: `duplicate key "id"`},
		{name: "array", body: `[]`, reason: "document is not a JSON object", err: "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"},
		{name: "null", body: `null`, reason: "document is not a JSON object"},
		{name: "trailing", body: `{} {}`, reason: "malformed JSON", err: "data after the top-level value"},
		{name: "deep", body: strings.Repeat("[", 40) + strings.Repeat("]", 40), reason: "malformed JSON", err: "nested deeper than 32 levels"},
		{name: "wrong id", body: doc("did:web:other.example.gov", []string{okVM}, []string{okSvc}), reason: "id does not match",
			err: `document id is "did:web:other.example.gov"`},
		{name: "id in other case", body: strings.Replace(doc(testDID, []string{okVM}, []string{okSvc}), `"id":"did`, `"ID":"did`, 1),
			reason: "id does not match", err: `document id is ""`},
		{name: "id not a string", body: `{"id":7}`, reason: "malformed document", err: "id is not a string"},
		{name: "wrong controller", body: doc(testDID, []string{vm(testDID+"#k-1", "did:web:evil.example", f.p256)}, []string{okSvc}),
			reason: "wrong controller", err: "no verificationMethod is controlled by the DID itself"},
		{name: "key of another DID", body: doc(testDID, []string{vm("did:web:evil.example#k-1", testDID, f.p256)}, []string{okSvc}),
			reason: "wrong controller", err: "no verificationMethod is controlled by the DID itself"},
		{name: "no keys", body: doc(testDID, nil, []string{okSvc}), reason: "no P-256 key", err: "no verificationMethod holds a P-256 Multikey"},
		{name: "K-256 only", body: doc(testDID, []string{vm(testDID+"#k-k", testDID, f.k256)}, []string{okSvc}),
			reason: "no P-256 key", err: "no verificationMethod holds a P-256 Multikey"},
		{name: "unparsable key", body: doc(testDID, []string{vm(testDID+"#k-1", testDID, "zDnBroken")}, []string{okSvc}),
			reason: "no P-256 key", err: "no verificationMethod holds a P-256 Multikey"},
		{name: "verificationMethod not a list", body: `{"id":"did:web:meet.example.gov","verificationMethod":{}}`,
			reason: "malformed document", err: "verificationMethod is not a list"},
		{name: "key type not a string", body: doc(testDID, []string{`{"id":"#k","type":1}`}, []string{okSvc}),
			reason: "malformed document", err: "verificationMethod[0]: type is not a string"},
		{name: "missing service", body: doc(testDID, []string{okVM}, nil), reason: "no federation service", err: "no service #entente_federation"},
		{name: "service of wrong type", body: doc(testDID, []string{okVM}, []string{svc("#entente_federation", "Other", "https://x.gov")}),
			reason: "no federation service", err: `service #entente_federation has type "Other", expected "EntenteFederation"`},
		{name: "service endpoint as map", body: doc(testDID, []string{okVM}, []string{`{"id":"#entente_federation","type":"EntenteFederation","serviceEndpoint":{"a":"b"}}`}),
			reason: "malformed document", err: "service[0]: serviceEndpoint is not a string"},
		{name: "other service endpoint as map ignored", body: doc(testDID, []string{okVM}, []string{`{"id":"#x","type":"X","serviceEndpoint":{"a":"b"}}`, okSvc})},
		{name: "http endpoint", body: doc(testDID, []string{okVM}, []string{svc("#entente_federation", "EntenteFederation", "http://meet.example.gov/federation")}),
			reason: "federation endpoint refused", err: `endpoint "http://meet.example.gov/federation": scheme must be https`},
		{name: "private endpoint", body: doc(testDID, []string{okVM}, []string{svc("#entente_federation", "EntenteFederation", "https://10.1.2.3/federation")}),
			reason: "federation endpoint refused", err: `endpoint "https://10.1.2.3/federation": non-public address refused`},
		{name: "private endpoint allowed", allowPrivate: true,
			body: doc(testDID, []string{okVM}, []string{svc("#entente_federation", "EntenteFederation", "https://10.1.2.3/federation")})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peer, err := parseDocument(testDID, []byte(tc.body), tc.allowPrivate)
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if peer.DID != testDID || len(peer.Keys) != 1 || !strings.HasPrefix(peer.FederationEndpoint, "https://") {
					t.Fatalf("peer %+v", peer)
				}
				key, err := peer.Key("#k-1")
				if err != nil || key.Multibase() != f.p256 {
					t.Errorf("key k-1: %v, %v", key, err)
				}
				return
			}
			var re *ResolveError
			if !errors.As(err, &re) {
				t.Fatalf("got %v (%T), want *ResolveError", err, err)
			}
			gotErr := ""
			if re.Err != nil {
				gotErr = re.Err.Error()
			}
			if re.DID != testDID || re.Reason != tc.reason || (tc.err != "" && gotErr != tc.err) {
				t.Errorf("got DID %q reason %q err %q; want reason %q err %q", re.DID, re.Reason, gotErr, tc.reason, tc.err)
			}
		})
	}
}

func TestPeerKey(t *testing.T) {
	f := newDocFixture(t)
	pub, err := atcrypto.ParsePublicMultibase(f.p256)
	if err != nil {
		t.Fatal(err)
	}
	p := &Peer{DID: testDID, Keys: map[string]atcrypto.PublicKey{"k-1": pub}}
	cases := []struct {
		keyID, err string
	}{
		{keyID: "#k-1"},
		{keyID: testDID + "#k-1"},
		{keyID: "did:web:evil.example#k-1", err: `key id "did:web:evil.example#k-1" belongs to another DID than did:web:meet.example.gov`},
		{keyID: "k-1", err: `key id "k-1" has no fragment`},
		{keyID: testDID + "#", err: `key id "did:web:meet.example.gov#" has no fragment`},
		{keyID: "#k-2", err: `key id "#k-2" of did:web:meet.example.gov: key not in the peer's DID document`},
	}
	for _, tc := range cases {
		t.Run(tc.keyID, func(t *testing.T) {
			got, err := p.Key(tc.keyID)
			if tc.err == "" {
				if err != nil || !got.Equal(pub) {
					t.Fatalf("got %v, %v", got, err)
				}
				return
			}
			if err == nil || err.Error() != tc.err {
				t.Fatalf("got %v, want %q", err, tc.err)
			}
		})
	}
	if _, err := p.Key("#k-2"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key error %v does not wrap ErrUnknownKey", err)
	}
}

// FuzzParseDocument checks that no document, however broken, panics the
// parser, and that whatever it accepts has the properties federation relies on.
func FuzzParseDocument(f *testing.F) {
	fx := newDocFixture(f)
	f.Add([]byte(doc(testDID, []string{vm(testDID+"#k-1", testDID, fx.p256)},
		[]string{svc("#entente_federation", "EntenteFederation", "https://meet.example.gov/f")})))
	f.Add([]byte(`{"id":"did:web:meet.example.gov","verificationMethod":[{"id":"#a"}],"service":[{}]}`))
	f.Add([]byte(`[{"id":1}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		peer, err := parseDocument(testDID, body, false)
		if err != nil {
			var re *ResolveError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *ResolveError", err)
			}
			return
		}
		if peer.DID != testDID || len(peer.Keys) == 0 {
			t.Fatalf("accepted peer without keys: %+v", peer)
		}
		for frag, k := range peer.Keys {
			if _, ok := k.(*atcrypto.PublicKeyP256); !ok {
				t.Fatalf("key %s is %T, not P-256", frag, k)
			}
		}
		if err := CheckEndpoint(peer.FederationEndpoint, false); err != nil {
			t.Fatalf("accepted endpoint %q: %v", peer.FederationEndpoint, err)
		}
	})
}
