package federation

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/entente-org/entente/internal/httpapi"
)

// The tests of this file hold spec/ and the code to each other: the list of
// message types, the schemas and the vectors.

// codeMessageTypes returns the value of every constant named Type… in the
// package's non-test sources: the message types the code sends or accepts.
func codeMessageTypes(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Type") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: constant %s is not a string literal", name, id.Name)
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					types = append(types, v)
				}
			}
		}
	}
	sort.Strings(types)
	if len(types) == 0 || len(slices.Compact(slices.Clone(types))) != len(types) {
		t.Fatalf("message type constants missing or repeated: %v", types)
	}
	return types
}

// schemaTypeEnum is the type enum of payload.schema.json.
func schemaTypeEnum(t *testing.T) []string {
	t.Helper()
	var s struct {
		Properties struct {
			Type struct {
				Enum []string `json:"enum"`
			} `json:"type"`
		} `json:"properties"`
	}
	b, err := os.ReadFile(filepath.Join(schemaDir, "payload.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	out := slices.Clone(s.Properties.Type.Enum)
	sort.Strings(out)
	return out
}

// specTable returns the rows of the first table of the section of
// spec/federation.md whose heading starts with heading, as cells.
func specTable(t *testing.T, heading string) [][]string {
	t.Helper()
	b, err := os.ReadFile("../spec/federation.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, heading) })
	if start < 0 {
		t.Fatalf("spec/federation.md has no heading %q", heading)
	}
	var rows [][]string
	inTable := false
	for _, l := range lines[start+1:] {
		if strings.HasPrefix(l, "#") {
			break
		}
		if !strings.HasPrefix(l, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	if len(rows) < 3 {
		t.Fatalf("no table under %q", heading)
	}
	return rows[2:] // without the header and its rule
}

var backticked = regexp.MustCompile("`([a-z.]+)`")

// typesOf returns the message types named in a table cell
// ("`conference.lock` / `conference.unlock`").
func typesOf(cell string) []string {
	var out []string
	for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestSpecMessageTypes fails when a message type is added to the code
// without being added to the schema's enum and to the table of spec §5, or
// the other way round.
func TestSpecMessageTypes(t *testing.T) {
	code := codeMessageTypes(t)
	if got := schemaTypeEnum(t); !slices.Equal(got, code) {
		t.Errorf("payload.schema.json type enum\n%v\ncode (constants Type…)\n%v", got, code)
	}

	var table, inbox []string
	for _, row := range specTable(t, "## 5. Message types") {
		if len(row) != 5 {
			t.Fatalf("§5 row %v: want 5 cells (type, from → to, endpoint, content, answer)", row)
		}
		types := typesOf(row[0])
		if len(types) != 1 || row[1] == "" || row[2] == "" || row[3] == "" {
			t.Errorf("§5 row %v: one type with its parties, endpoint and content", row)
		}
		table = append(table, types...)
		if strings.HasPrefix(row[2], "`POST /inbox`") {
			inbox = append(inbox, types...)
		}
	}
	sort.Strings(table)
	if !slices.Equal(table, code) {
		t.Errorf("spec §5 table types\n%v\ncode\n%v", table, code)
	}

	// The code's parser knows exactly these types.
	for _, typ := range code {
		if !knownType(typ) {
			t.Errorf("knownType(%q) = false", typ)
		}
	}
	for _, typ := range []string{"", "conference", "conference.invite ", "Conference.invite", "media.trunk", "participant.kick"} {
		if knownType(typ) {
			t.Errorf("knownType(%q) = true", typ)
		}
	}

	// The events of the code are those of the table of §6.1, and the ones
	// a member sends to the host's inbox are those §5 routes there.
	var events, fromMembers []string
	for _, row := range specTable(t, "### 6.1 Events") {
		events = append(events, typesOf(row[0])...)
	}
	sort.Strings(events)
	var codeEvents []string
	for _, typ := range code {
		if isEventType(typ) {
			codeEvents = append(codeEvents, typ)
		}
		if memberEventTypes[typ] {
			fromMembers = append(fromMembers, typ)
		}
	}
	if !slices.Equal(events, codeEvents) {
		t.Errorf("spec §6.1 events\n%v\ncode events\n%v", events, codeEvents)
	}
	var inboxEvents []string
	for _, typ := range inbox {
		if isEventType(typ) {
			inboxEvents = append(inboxEvents, typ)
		}
	}
	sort.Strings(inboxEvents)
	if !slices.Equal(inboxEvents, fromMembers) {
		t.Errorf("events §5 routes to POST /inbox\n%v\nevents the host takes from members\n%v", inboxEvents, fromMembers)
	}
}

// TestSpecVectorsAgainstSchemas checks the envelope vectors against the
// schemas: the valid one matches them, and every invalid one is refused by
// the schemas unless its fault is one a JSON Schema cannot see (a signature,
// a duplicate or case-variant key, bytes that are not UTF-8, a rule between
// two fields), which the code refuses (TestVectors).
func TestSpecVectorsAgainstSchemas(t *testing.T) {
	schemas := compileSchemas(t)
	var valid validVector
	readVector(t, "envelope-valid.json", &valid)
	validate(t, schemas["envelope"], valid.Envelope)
	validate(t, schemas["payload"], valid.Payload)
	var p Payload
	if err := json.Unmarshal(valid.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != TypeInvite || p.Destination != p.Origin {
		t.Errorf("envelope-valid.json: a %s addressed to %s by %s; spec §6.1 addresses an invite to its host", p.Type, p.Destination, p.Origin)
	}

	beyondSchema := map[string]string{
		"tampered payload":               "a signature",
		"high-S signature":               "a signature",
		"key of another DID":             "sig.key against the payload's origin",
		"unknown key":                    "a DID document",
		"envelope duplicate key":         "duplicate keys, which JSON parsers merge",
		"envelope float version":         "1.0, which JSON Schema equals to 1",
		"payload duplicate key":          "duplicate keys, which JSON parsers merge",
		"payload lifetime over 7 days":   "expires against created",
		"payload sender of another node": "sender against origin",
	}
	var invalid []invalidVector
	readVector(t, "envelope-invalid.json", &invalid)
	for _, c := range invalid {
		refused := validateDoc(schemas["envelope"], []byte(c.Envelope)) != nil
		var env Envelope
		if !refused && json.Unmarshal([]byte(c.Envelope), &env) == nil {
			b, err := base64.RawURLEncoding.DecodeString(env.Payload)
			if err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			refused = validateDoc(schemas["payload"], b) != nil
		}
		if why, beyond := beyondSchema[c.Name]; refused == beyond {
			t.Errorf("%s: refused by the schemas = %v, but the test lists it as beyond them = %v (%s)", c.Name, refused, beyond, why)
		}
	}

	// The DID document of the test key, and the body of the signed request.
	doc, err := os.ReadFile(filepath.Join(vectorDir, "did-document.json"))
	if err != nil {
		t.Fatal(err)
	}
	validate(t, schemas["did-document"], doc)
	var hs httpSigVector
	readVector(t, "http-signature.json", &hs)
	validate(t, schemas["envelope"], []byte(hs.Body))
	var body Envelope
	if err := json.Unmarshal([]byte(hs.Body), &body); err != nil {
		t.Fatal(err)
	}
	hb, err := body.PayloadBytes()
	if err != nil {
		t.Fatal(err)
	}
	validate(t, schemas["payload"], hb)

	// The envelope schema bounds payload by the body limit, not 4096.
	big := `{"v":1,"payload":"` + strings.Repeat("A", 8000) + `","sig":{"key":"did:web:a.example#k-aaaaaaaa","alg":"ES256","value":"` + strings.Repeat("A", 86) + `"}}`
	if err := validateDoc(schemas["envelope"], []byte(big)); err != nil {
		t.Errorf("an 8000-character payload is refused by the envelope schema: %v", err)
	}
	tooBig := strings.Replace(big, strings.Repeat("A", 8000), strings.Repeat("A", 1<<20+1), 1)
	if validateDoc(schemas["envelope"], []byte(tooBig)) == nil {
		t.Error("a payload over the 1 MiB body is accepted by the envelope schema")
	}
}

// TestCarriedEnvelopeChecks: an envelope carried inside a payload (here a
// record's event) is held to v 1 and ES256 like a request body (spec §4.1),
// and a link without one of its six fields is malformed (spec §6.3).
func TestCarriedEnvelopeChecks(t *testing.T) {
	lookup, _, _ := vectorLookup(t)
	var vectors []messageVector
	readVector(t, "messages.json", &vectors)
	i := slices.IndexFunc(vectors, func(v messageVector) bool { return v.Type == TypeLog })
	var p Payload
	if err := json.Unmarshal(vectors[i].Payload, &p); err != nil {
		t.Fatal(err)
	}
	var c LogContent
	if err := decodeContent(p.Content, &c); err != nil {
		t.Fatal(err)
	}
	ev := c.Records[0].Event
	if _, _, err := Open(context.Background(), ev, lookup); err != nil {
		t.Fatalf("the record's event is refused as it is: %v", err)
	}
	for name, mutate := range map[string]func(*Envelope){
		"v 2":       func(e *Envelope) { e.V = 2 },
		"no v":      func(e *Envelope) { e.V = 0 },
		"alg ES384": func(e *Envelope) { e.Sig.Alg = "ES384" },
		"empty alg": func(e *Envelope) { e.Sig.Alg = "" },
	} {
		e := ev
		mutate(&e)
		_, _, err := Open(context.Background(), e, lookup)
		var fe *httpapi.Error
		if !errors.As(err, &fe) || fe.Status != 400 {
			t.Errorf("%s: got %v, want 400", name, err)
		}
	}

	lb, err := c.Records[0].Link.PayloadBytes()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeLink(lb); err != nil {
		t.Fatal(err)
	}
	var link map[string]json.RawMessage
	if err := json.Unmarshal(lb, &link); err != nil {
		t.Fatal(err)
	}
	for field := range link {
		l := maps(link)
		delete(l, field)
		b, _ := json.Marshal(l)
		_, err := decodeLink(b)
		var fe *httpapi.Error
		if !errors.As(err, &fe) || fe.Status != 400 {
			t.Errorf("link without %s: got %v, want 400", field, err)
		}
	}
}

// TestRelayCarriesLongestChat: a chat line of the longest text spec §5.1
// allows, of characters Entente's JSON encoder escapes, is relayed: the relay
// is sealed, accepted by the payload decoder, the content decoder and the
// payload schema, and the signal inside opens unchanged (spec §4.3).
func TestRelayCarriesLongestChat(t *testing.T) {
	kr := newTestKeyring(t)
	lookup := lookupFor(t, kr, testOrigin)
	text := strings.Repeat("<", 4000) // 6 bytes each once escaped
	raw, _ := json.Marshal(SignalContent{Kind: SignalChat, Text: text})
	sig := Payload{ID: "s1", Type: TypeSignal, Origin: testOrigin, Destination: testOrigin, Sender: "alice@" + testOrigin,
		Conference: "c-7g2xk4m9q3d8w1z5", Created: 1764093600000, Expires: 1764093720000, Content: raw}
	env := sealTest(t, kr, sig)
	rc, _ := json.Marshal(RelayContent{Signal: env})
	relay := Payload{ID: "r1", Type: TypeRelay, Origin: testOrigin, Destination: testDest, Sender: testOrigin,
		Conference: sig.Conference, Created: sig.Created, Expires: sig.Expires, Content: rc}
	b, err := MarshalPayload(relay)
	if err != nil {
		t.Fatalf("a relay of a 4000-byte chat line cannot be sealed: %v", err)
	}
	p, err := DecodePayload(b)
	if err != nil {
		t.Fatal(err)
	}
	var c RelayContent
	if err := decodeContent(p.Content, &c); err != nil {
		t.Fatal(err)
	}
	inner, _, err := Open(context.Background(), c.Signal, lookup)
	if err != nil {
		t.Fatal(err)
	}
	var sc SignalContent
	if err := decodeContent(inner.Content, &sc); err != nil || sc.Text != text {
		t.Fatalf("relayed chat: %v, %d bytes", err, len(sc.Text))
	}
	validate(t, compileSchemas(t)["payload"], b)

	// The exception is for the relayed signal only: an event carried in a
	// record keeps the 4096 limit, and so does every other message.
	long := strings.Replace(string(b), `"type":"conference.relay"`, `"type":"conference.log"`, 1)
	if _, err := DecodePayload([]byte(long)); err == nil {
		t.Error("a conference.log with a 4096+ byte string is accepted")
	}
}

// TestSpecInvalidVectorErrors: the code refuses every invalid envelope
// vector with its expected status, and answers it as spec §3.3 and §9 say:
// that status, the code §9 gives it, in the JSON error body.
func TestSpecInvalidVectorErrors(t *testing.T) {
	codes := map[int]string{}
	for _, row := range specTable(t, "## 9. Error codes") {
		status, err := strconv.Atoi(row[0])
		if err != nil || len(row) < 2 || len(typesOfCode(row[1])) == 0 {
			continue // not a row of one status and its code
		}
		codes[status] = typesOfCode(row[1])[0]
	}
	if len(codes) < 7 {
		t.Fatalf("§9 gives codes for %v only", codes)
	}
	lookup, _, _ := vectorLookup(t)
	var invalid []invalidVector
	readVector(t, "envelope-invalid.json", &invalid)
	for _, c := range invalid {
		env, err := DecodeEnvelope([]byte(c.Envelope))
		if err == nil {
			_, _, err = Open(context.Background(), env, lookup)
		}
		rec := httptest.NewRecorder()
		httpapi.WriteError(rec, err)
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if jerr := json.Unmarshal(rec.Body.Bytes(), &body); jerr != nil {
			t.Fatalf("%s: error body %q: %v", c.Name, rec.Body.String(), jerr)
		}
		if rec.Code != c.ExpectedStatus || body.Error.Code != codes[c.ExpectedStatus] || body.Error.Message == "" ||
			rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: answered %d %s %q, want %d %s (%s)", c.Name, rec.Code, rec.Header().Get("Content-Type"), rec.Body.String(), c.ExpectedStatus, codes[c.ExpectedStatus], c.Reason)
		}
	}
}

var codeCell = regexp.MustCompile("`([a-z_]+)`")

func typesOfCode(cell string) []string {
	var out []string
	for _, m := range codeCell.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}
