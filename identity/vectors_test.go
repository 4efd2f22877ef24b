package identity

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The spec's test vectors (spec/vectors) must be what this package makes.
func TestSpecDIDDocumentVector(t *testing.T) {
	var key struct {
		DID, KeyID, Private, Public string
	}
	raw := readSpec(t, "vectors/keys.json")
	var k map[string]string
	if err := json.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	key.DID, key.KeyID, key.Private, key.Public = k["did"], k["key_id"], k["private_multibase"], k["public_multibase"]

	priv, err := atcrypto.ParsePrivateMultibase(key.Private)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := priv.PublicKey()
	if pub.Multibase() != key.Public {
		t.Fatalf("public key %s, vector says %s", pub.Multibase(), key.Public)
	}
	if got := keyIDFor(pub); got != key.KeyID {
		t.Fatalf("key id %s, vector says %s (spec/identity.md §2)", got, key.KeyID)
	}
	doc, err := BuildDocument(key.DID, []KeyInfo{{ID: key.KeyID, PublicMultibase: key.Public}}, "https://ministry.example/federation/v1")
	if err != nil {
		t.Fatal(err)
	}
	want := readSpec(t, "vectors/did-document.json")
	if !jsonEqual(t, doc, want) {
		t.Fatalf("BuildDocument differs from spec/vectors/did-document.json:\n%s", doc)
	}
	peer, err := parseDocument(key.DID, want, false)
	if err != nil {
		t.Fatalf("the vector does not parse: %v", err)
	}
	if peer.FederationEndpoint != "https://ministry.example/federation/v1" || peer.Keys[key.KeyID] == nil {
		t.Fatalf("parsed %+v", peer)
	}

	c := jsonschema.NewCompiler()
	var schemaDoc any
	if err := json.Unmarshal(readSpec(t, "schemas/did-document.schema.json"), &schemaDoc); err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("did-document.schema.json", schemaDoc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("did-document.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var inst any
	json.Unmarshal(want, &inst)
	if err := schema.Validate(inst); err != nil {
		t.Fatalf("vector does not match its schema: %v", err)
	}
	// The schema refuses a document without the federation service.
	var broken map[string]any
	json.Unmarshal(want, &broken)
	delete(broken, "service")
	if err := schema.Validate(broken); err == nil {
		t.Fatal("schema accepts a document without a service")
	}
}

func readSpec(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "spec", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}
