package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	atid "github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// FederationServiceID is the fragment of the DID document's service entry
// that tells peers where to send federation messages.
const FederationServiceID = "entente_federation"

// FederationServiceType is the type of that service entry.
const FederationServiceType = "EntenteFederation"

// documentContext is the JSON-LD context of a document with Multikey keys.
var documentContext = []string{"https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"}

// didDocument is the published form. It reuses indigo's entry types so that
// what is written is exactly what indigo's ParseIdentity reads back.
type didDocument struct {
	Context            []string                     `json:"@context"`
	ID                 string                       `json:"id"`
	VerificationMethod []atid.DocVerificationMethod `json:"verificationMethod"`
	AssertionMethod    []string                     `json:"assertionMethod"`
	Service            []atid.DocService            `json:"service"`
}

// BuildDocument renders the DID document for did with the given keys (the
// current key and any previous keys still in their overlap) and federation
// endpoint. Only the current key is an assertionMethod: previous keys are
// published for verification of messages already sent, not for new ones.
func BuildDocument(did string, keys []KeyInfo, federationEndpoint string) ([]byte, error) {
	if _, err := DocumentURL(did); err != nil {
		return nil, fmt.Errorf("build DID document: %w", err)
	}
	if err := CheckEndpoint(federationEndpoint, true); err != nil {
		return nil, fmt.Errorf("build DID document: federation endpoint: %w", err)
	}
	doc := didDocument{
		Context: documentContext,
		ID:      did,
		Service: []atid.DocService{{
			ID:              "#" + FederationServiceID,
			Type:            FederationServiceType,
			ServiceEndpoint: federationEndpoint,
		}},
	}
	for _, k := range keys {
		if k.ID == "" || k.PublicMultibase == "" {
			return nil, fmt.Errorf("build DID document: key %q has no id or public key", k.ID)
		}
		vmID := did + "#" + k.ID
		doc.VerificationMethod = append(doc.VerificationMethod, atid.DocVerificationMethod{
			ID:                 vmID,
			Type:               "Multikey",
			Controller:         did,
			PublicKeyMultibase: k.PublicMultibase,
		})
		if k.Current() {
			doc.AssertionMethod = append(doc.AssertionMethod, vmID)
		}
	}
	if len(doc.AssertionMethod) != 1 {
		return nil, fmt.Errorf("build DID document: %d current keys given, expected exactly one", len(doc.AssertionMethod))
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("build DID document: %w", err)
	}
	return append(out, '\n'), nil
}

// DocumentHandler serves the node's DID document as it is at the time of each
// request, so a rotation or the end of an overlap shows without a restart.
func (k *Keyring) DocumentHandler(did, federationEndpoint string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		doc, err := BuildDocument(did, k.Keys(time.Now()), federationEndpoint)
		if err != nil {
			// The node's request log logs the cause once, with the
			// request id (it implements RecordCause).
			if rc, ok := w.(interface{ RecordCause(error) }); ok {
				rc.RecordCause(err)
			}
			http.Error(w, "DID document unavailable", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/did+json")
		w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(doc)
	})
}

// parseDocument checks a fetched DID document for did and extracts what
// federation needs. Field names are matched exactly: encoding/json's
// case-insensitive matching would let "ID" stand in for "id".
func parseDocument(did string, body []byte, allowPrivate bool) (*Peer, error) {
	fail := func(reason string, err error) (*Peer, error) {
		return nil, &ResolveError{DID: did, Reason: reason, Err: err}
	}
	if err := checkStrictJSON(body); err != nil {
		return fail("malformed JSON", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return fail("document is not a JSON object", err)
	}
	var id string
	if err := field(top, "id", &id); err != nil {
		return fail("malformed document", err)
	}
	if id != did {
		return fail("id does not match", fmt.Errorf("document id is %q", id))
	}
	parsedDID, err := syntax.ParseDID(did)
	if err != nil {
		return fail("malformed DID", err)
	}
	doc := atid.DIDDocument{DID: parsedDID}

	methods, err := objects(top, "verificationMethod")
	if err != nil {
		return fail("malformed document", err)
	}
	for i, m := range methods {
		var vm atid.DocVerificationMethod
		err := errors.Join(
			field(m, "id", &vm.ID),
			field(m, "type", &vm.Type),
			field(m, "controller", &vm.Controller),
			field(m, "publicKeyMultibase", &vm.PublicKeyMultibase),
		)
		if err != nil {
			return fail("malformed document", fmt.Errorf("verificationMethod[%d]: %w", i, err))
		}
		// indigo keys entries by fragment alone; an entry naming another
		// DID must not be taken as one of this DID's keys.
		if prefix, _, ok := strings.Cut(vm.ID, "#"); ok && prefix != "" && prefix != did {
			continue
		}
		doc.VerificationMethod = append(doc.VerificationMethod, vm)
	}

	services, err := objects(top, "service")
	if err != nil {
		return fail("malformed document", err)
	}
	for i, s := range services {
		var svc atid.DocService
		if err := errors.Join(field(s, "id", &svc.ID), field(s, "type", &svc.Type)); err != nil {
			return fail("malformed document", fmt.Errorf("service[%d]: %w", i, err))
		}
		// DID Core allows maps and lists as endpoints; only ours must be a
		// plain URL.
		if err := field(s, "serviceEndpoint", &svc.ServiceEndpoint); err != nil {
			if svc.ID == "#"+FederationServiceID || svc.ID == did+"#"+FederationServiceID {
				return fail("malformed document", fmt.Errorf("service[%d]: %w", i, err))
			}
			continue
		}
		doc.Service = append(doc.Service, svc)
	}

	ident := atid.ParseIdentity(&doc)
	if len(methods) > 0 && len(ident.Keys) == 0 {
		return fail("wrong controller", errors.New("no verificationMethod is controlled by the DID itself"))
	}
	keys := make(map[string]atcrypto.PublicKey)
	for frag := range ident.Keys {
		pub, err := ident.GetPublicKey(frag)
		if err != nil {
			continue
		}
		if p256, ok := pub.(*atcrypto.PublicKeyP256); ok {
			keys[frag] = p256
		}
	}
	if len(keys) == 0 {
		return fail("no P-256 key", errors.New("no verificationMethod holds a P-256 Multikey"))
	}

	svc, ok := ident.Services[FederationServiceID]
	endpoint := ident.GetServiceEndpoint(FederationServiceID)
	if !ok || endpoint == "" {
		return fail("no federation service", fmt.Errorf("no service #%s", FederationServiceID))
	}
	if svc.Type != FederationServiceType {
		return fail("no federation service", fmt.Errorf("service #%s has type %q, expected %q", FederationServiceID, svc.Type, FederationServiceType))
	}
	if err := CheckEndpoint(endpoint, allowPrivate); err != nil {
		return fail("federation endpoint refused", err)
	}
	return &Peer{DID: did, Keys: keys, FederationEndpoint: endpoint}, nil
}

// field decodes obj[name] into a string; a missing member leaves it empty.
func field(obj map[string]json.RawMessage, name string, dst *string) error {
	raw, ok := obj[name]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%s is not a string", name)
	}
	return nil
}

// objects decodes obj[name] as a list of JSON objects; missing gives none.
func objects(obj map[string]json.RawMessage, name string) ([]map[string]json.RawMessage, error) {
	raw, ok := obj[name]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%s is not a list", name)
	}
	out := make([]map[string]json.RawMessage, 0, len(list))
	for i, item := range list {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(item, &m); err != nil || m == nil {
			return nil, fmt.Errorf("%s[%d] is not an object", name, i)
		}
		out = append(out, m)
	}
	return out, nil
}
