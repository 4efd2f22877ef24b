package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/httpapi"
)

// messageVector is one entry of spec/vectors/messages.json: a valid message
// of one type, signed with the test key of keys.json.
type messageVector struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Endpoint    string          `json:"endpoint"`
	Envelope    json.RawMessage `json:"envelope"`
	Payload     json.RawMessage `json:"payload"`
	PayloadHash string          `json:"payload_sha256"`
}

// Fixed values of the message vectors: the test key's node
// (ministry.example) plays the host for the host's messages and the member
// for the member's, the other node is agency.example.
const (
	vecConference = "c-7g2xk4m9q3d8w1z5"
	vecCreated    = int64(1764093600000)
	vecLifetime   = int64(24 * 3600 * 1000)
	vecSignalLife = int64(2 * 60 * 1000)
	vecSDP        = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n"
)

// vecSealer seals the payloads of the message vectors.
type vecSealer struct {
	t   *testing.T
	kr  *identity.Keyring
	did string
	n   int
}

// seal makes a payload of the test node with a fixed id, seals it and
// returns the envelope, the exact payload bytes and the payload.
func (v *vecSealer) seal(typ, destination, sender string, content any, life int64) (Envelope, []byte) {
	v.t.Helper()
	v.n++
	raw, err := marshalContent(content)
	if err != nil {
		v.t.Fatal(err)
	}
	conference := vecConference
	if typ == TypeReceipt {
		conference = ""
	}
	p := Payload{
		ID: "01JDX4G3Y3ZC9QK4W7A1B2C" + string(rune('A'+v.n/10)) + string(rune('0'+v.n%10)), Type: typ,
		Origin: v.did, Destination: destination, Sender: sender, Conference: conference,
		Created: vecCreated + int64(v.n)*1000, Expires: vecCreated + int64(v.n)*1000 + life, Content: raw,
	}
	b, err := MarshalPayload(p)
	if err != nil {
		v.t.Fatal(err)
	}
	env, err := Seal(v.did, v.kr, b)
	if err != nil {
		v.t.Fatal(err)
	}
	return env, b
}

func (v *vecSealer) vector(typ, description, endpoint string, env Envelope, b []byte) messageVector {
	v.t.Helper()
	e, err := json.Marshal(env)
	if err != nil {
		v.t.Fatal(err)
	}
	return messageVector{Type: typ, Description: description, Endpoint: endpoint, Envelope: e, Payload: b, PayloadHash: HashHex(b)}
}

// generateMessageVectors writes spec/vectors/messages.json: one valid
// message of every type of spec §5. The host's events form a log whose
// records (create, invite, a join) travel in the conference.log and
// conference.records vectors. It returns the vectors.
func generateMessageVectors(t *testing.T, kr *identity.Keyring, did string) []messageVector {
	t.Helper()
	v := &vecSealer{t: t, kr: kr, did: did}
	const member = "did:web:agency.example"
	alice, bob := UserRef("alice", did), UserRef("bob", member)
	var out []messageVector
	add := func(typ, description, endpoint, destination, sender string, content any) (Envelope, []byte) {
		env, b := v.seal(typ, destination, sender, content, vecLifetime)
		out = append(out, v.vector(typ, description, endpoint, env, b))
		return env, b
	}
	const inRecords = "only inside records"
	const inbox = "POST /inbox"
	hostEvent := func(typ, description string, content any) (Envelope, []byte) {
		return add(typ, "The host's event: "+description+" Addressed to the host itself (spec §6.1).", inRecords, did, alice, content)
	}
	memberEvent := func(typ, description string, content any) {
		add(typ, "A member's event, sent by the member to the host: "+description, inbox, member, alice, content)
	}

	// The host's log: create, invite, join, chained by links.
	createEnv, createBytes := hostEvent(TypeCreate, "alice creates a conference with a lobby.", CreateContent{Title: "Inter-ministry coordination", Moderators: []string{"carol"}, Lobby: true})
	inviteEnv, inviteBytes := hostEvent(TypeInvite, "the whole organisation of agency.example is invited.", InviteContent{Node: member, Users: []string{}})
	joinEnv, joinBytes := add(TypeJoin, "alice, a user of the host, joins (the host's own event, in its log).", inRecords, did, alice,
		JoinContent{User: alice, DisplayName: "Alice Durand", Organisation: "Ministry of the Interior"})
	var records []RecordJSON
	prev := ""
	for i, ev := range []struct {
		env   Envelope
		bytes []byte
	}{{createEnv, createBytes}, {inviteEnv, inviteBytes}, {joinEnv, joinBytes}} {
		link := LinkPayload{Conference: vecConference, Seq: int64(i + 1), Prev: prev, Event: HashHex(ev.bytes), Host: did, Created: vecCreated + int64(i+1)*1000 + 500}
		lb, err := json.Marshal(link)
		if err != nil {
			t.Fatal(err)
		}
		linkEnv, err := Seal(did, kr, lb)
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, RecordJSON{Event: ev.env, Link: linkEnv})
		prev = HashHex(lb)
	}
	hostEvent(TypeAdmit, "a moderator lets a waiting user in.", UserContent{User: bob})
	hostEvent(TypeDeny, "a moderator sends a waiting user away.", UserContent{User: bob})
	hostEvent(TypeRemove, "a moderator removes a participant.", UserContent{User: bob})
	hostEvent(TypeLobby, "a moderator turns the lobby off.", LobbyContent{On: false})
	hostEvent(TypeLock, "a moderator locks the conference.", EmptyContent{})
	hostEvent(TypeUnlock, "a moderator unlocks the conference.", EmptyContent{})
	add(TypeEnd, "The host's event: the host node itself (its administrators) ends the conference: sender is the host's DID.", inRecords, did, did, EmptyContent{})

	memberEvent(TypeAccept, "alice accepts the invitation of her node. Always in a user's name (spec §6.1).", EmptyContent{})
	memberEvent(TypeDecline, "alice declines the invitation of her node.", EmptyContent{})
	memberEvent(TypeJoin, "alice joins a conference hosted elsewhere; her node vouches for her organisation.", JoinContent{User: alice, DisplayName: "Alice Durand", Organisation: "Ministry of the Interior"})
	memberEvent(TypeKnock, "alice knocks: the conference's lobby is on, she waits to be admitted.", JoinContent{User: alice, DisplayName: "Alice Durand", Organisation: "Ministry of the Interior"})
	memberEvent(TypeLeave, "alice leaves.", UserContent{User: alice})

	add(TypeLog, "The host sends the member the records it has not sent it yet: here the first three of the log, created by the host's events of this file (spec §6.4).", inbox, member, did, LogContent{Records: records})
	add(TypeRecords, "The host's answer to GET /conferences/{id}/records?after=1 (spec §6.4).", "response of GET /conferences/{id}/records", member, did, LogContent{Records: records[1:]})
	add(TypeReceipt, "The answer to a POST /inbox of a conference event that became record 4 (spec §3.3). Its conference is \"\".", "response of POST /inbox", member, did, ReceiptContent{Message: "ilq4d7a3kbx2m5c6n8p0r1s9tu", Status: "accepted", Seq: 4})
	add(TypeRoster, "The host's answer to GET /conferences/{id}/roster (spec §7).", "response of GET /conferences/{id}/roster", member, did, Roster{
		Head: Head{Seq: 3, Hash: prev}, LobbyOn: true, Lobby: []RosterMember{},
		Participants: []RosterMember{{User: alice, DisplayName: "Alice Durand", Organisation: "Ministry of the Interior", Node: did, JoinedSeq: 3, JoinEvent: HashHex(joinBytes)}},
	})

	sigEnv, sigBytes := v.seal(TypeSignal, member, alice, SignalContent{Kind: SignalChat, Text: "Bonjour à tous"}, vecSignalLife)
	out = append(out, v.vector(TypeSignal, "A chat line of alice, sent by her node to the host; expires 2 minutes after created (spec §5.1).", inbox, sigEnv, sigBytes))
	inner, _ := v.seal(TypeSignal, did, alice, SignalContent{Kind: SignalHand, On: true}, vecSignalLife)
	relEnv, relBytes := v.seal(TypeRelay, member, did, RelayContent{Signal: inner}, vecSignalLife)
	out = append(out, v.vector(TypeRelay, "The host relays to a member the signal of one of its own users (a raised hand), unchanged as its author's node signed it (spec §5.1).", inbox, relEnv, relBytes))

	add(TypeTrunkOffer, "A member's SDP offer for the conference's trunk (shortened: a real one has the slot pool of spec §10.3).", "POST /conferences/{id}/trunk", member, did, TrunkOffer{SDP: vecSDP, Relay: true})
	add(TypeTrunkAnswer, "The host's answer to a trunk offer (shortened).", "response of POST /conferences/{id}/trunk", member, did, TrunkAnswer{SDP: vecSDP})

	writeVector(t, "messages.json", out)
	return out
}

// contentDecoders decode each type's content as the code does when it
// receives it.
var contentDecoders = map[string]func(json.RawMessage) error{
	TypeCreate:  func(b json.RawMessage) error { return decodeContent(b, &CreateContent{}) },
	TypeInvite:  func(b json.RawMessage) error { return decodeContent(b, &InviteContent{}) },
	TypeAccept:  func(b json.RawMessage) error { return decodeContent(b, &EmptyContent{}) },
	TypeDecline: func(b json.RawMessage) error { return decodeContent(b, &EmptyContent{}) },
	TypeJoin:    func(b json.RawMessage) error { return decodeContent(b, &JoinContent{}) },
	TypeKnock:   func(b json.RawMessage) error { return decodeContent(b, &JoinContent{}) },
	TypeLeave:   func(b json.RawMessage) error { return decodeContent(b, &UserContent{}) },
	TypeAdmit:   func(b json.RawMessage) error { return decodeContent(b, &UserContent{}) },
	TypeDeny:    func(b json.RawMessage) error { return decodeContent(b, &UserContent{}) },
	TypeRemove:  func(b json.RawMessage) error { return decodeContent(b, &UserContent{}) },
	TypeLobby:   func(b json.RawMessage) error { return decodeContent(b, &LobbyContent{}) },
	TypeLock:    func(b json.RawMessage) error { return decodeContent(b, &EmptyContent{}) },
	TypeUnlock:  func(b json.RawMessage) error { return decodeContent(b, &EmptyContent{}) },
	TypeEnd:     func(b json.RawMessage) error { return decodeContent(b, &EmptyContent{}) },
	TypeLog:     func(b json.RawMessage) error { return decodeContent(b, &LogContent{}) },
	TypeRecords: func(b json.RawMessage) error { return decodeContent(b, &LogContent{}) },
	TypeReceipt: func(b json.RawMessage) error { return decodeContent(b, &ReceiptContent{}) },
	TypeRoster:  func(b json.RawMessage) error { return decodeContent(b, &Roster{}) },
	TypeRelay:   func(b json.RawMessage) error { return decodeContent(b, &RelayContent{}) },
	TypeSignal: func(b json.RawMessage) error {
		var c SignalContent
		if err := decodeContent(b, &c); err != nil {
			return err
		}
		return c.validate()
	},
	TypeTrunkOffer:  func(b json.RawMessage) error { return decodeTrunkContent(b, &TrunkOffer{}) },
	TypeTrunkAnswer: func(b json.RawMessage) error { return decodeTrunkContent(b, &TrunkAnswer{}) },
}

// vectorLookup answers for the test key of keys.json only.
func vectorLookup(t *testing.T) (KeyLookup, atcrypto.PublicKey, vectorKeys) {
	t.Helper()
	var vk vectorKeys
	readVector(t, "keys.json", &vk)
	pub, err := atcrypto.ParsePublicMultibase(vk.PublicMultibase)
	if err != nil {
		t.Fatal(err)
	}
	return func(_ context.Context, keyID string) (atcrypto.PublicKey, error) {
		if keyID != vk.DID+"#"+vk.KeyID {
			return nil, fmt.Errorf("no key %s", keyID)
		}
		return pub, nil
	}, pub, vk
}

func validateDoc(s *jsonschema.Schema, doc []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

// TestSpecMessageVectors checks spec/vectors/messages.json: one message of
// every type, each valid under the schemas and accepted by the code, the
// records of the log chained and authorized as a member would check them.
func TestSpecMessageVectors(t *testing.T) {
	if *updateVectors {
		t.Skip("regenerating")
	}
	lookup, pub, vk := vectorLookup(t)
	schemas := compileSchemas(t)
	var vectors []messageVector
	readVector(t, "messages.json", &vectors)

	var covered []string
	for _, v := range vectors {
		t.Run(v.Type+"/"+v.Endpoint, func(t *testing.T) {
			covered = append(covered, v.Type)
			env, err := DecodeEnvelope(v.Envelope)
			if err != nil {
				t.Fatal(err)
			}
			p, raw, err := Open(context.Background(), env, lookup)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, raw, v.Payload) || HashHex(raw) != v.PayloadHash || p.Type != v.Type {
				t.Fatalf("payload %s (%s), vector %s (%s)", raw, HashHex(raw), v.Payload, v.PayloadHash)
			}
			validate(t, schemas["envelope"], v.Envelope)
			validate(t, schemas["payload"], raw)
			decode := contentDecoders[p.Type]
			if decode == nil {
				t.Fatalf("no content decoder for %s", p.Type)
			}
			if err := decode(p.Content); err != nil {
				t.Fatalf("content refused: %v", err)
			}
			// Spec §6.1: an event is addressed to the host, which is its
			// origin for the host's own events.
			if isEventType(p.Type) && !memberEventTypes[p.Type] && p.Destination != p.Origin {
				t.Errorf("host event addressed to %s, not the host %s", p.Destination, p.Origin)
			}
			if p.Type == TypeSignal || p.Type == TypeRelay {
				if p.Expires-p.Created > signalTTL.Milliseconds() {
					t.Errorf("signal lives %d ms, more than %s", p.Expires-p.Created, signalTTL)
				}
			}
			switch p.Type {
			case TypeLog, TypeRecords:
				checkVectorRecords(t, p, lookup, pub, schemas)
			case TypeRelay:
				var rc RelayContent
				if err := decodeContent(p.Content, &rc); err != nil {
					t.Fatal(err)
				}
				inner, innerRaw, err := Open(context.Background(), rc.Signal, lookup)
				if err != nil {
					t.Fatal(err)
				}
				validate(t, schemas["payload"], innerRaw)
				if inner.Type != TypeSignal || inner.Conference != p.Conference || inner.Destination != p.Origin {
					t.Errorf("relayed %s of %s for %s", inner.Type, inner.Conference, inner.Destination)
				}
			}
			checkContentFields(t, v, raw, schemas["payload"])
		})
	}
	sort.Strings(covered)
	covered = slices.Compact(covered)
	if code := codeMessageTypes(t); !slices.Equal(covered, code) {
		t.Errorf("messages.json covers\n%v\ncode types\n%v", covered, code)
	}
	if vk.DID != testOrigin {
		t.Errorf("keys.json is for %s", vk.DID)
	}
}

// checkVectorRecords verifies the records of a log vector as spec §6.3–6.4
// say a member does: each link signed by the host and valid under
// link.schema.json, chained from seq 1 (for conference.log) with each link
// naming its event's hash, and every event authorized against the state
// the records before it make.
func checkVectorRecords(t *testing.T, p Payload, lookup KeyLookup, pub atcrypto.PublicKey, schemas map[string]*jsonschema.Schema) {
	t.Helper()
	var c LogContent
	if err := decodeContent(p.Content, &c); err != nil {
		t.Fatal(err)
	}
	st := newState()
	var prevSeq int64
	for i, r := range c.Records {
		if r.Link.KeyDID() != p.Origin {
			t.Fatalf("record %d: link signed by %s, not the host", i, r.Link.KeyDID())
		}
		if err := r.Link.Verify(pub); err != nil {
			t.Fatal(err)
		}
		lb, err := r.Link.PayloadBytes()
		if err != nil {
			t.Fatal(err)
		}
		validate(t, schemas["link"], lb)
		link, err := decodeLink(lb)
		if err != nil {
			t.Fatal(err)
		}
		ev, eb, err := Open(context.Background(), r.Event, lookup)
		if err != nil {
			t.Fatal(err)
		}
		if link.Event != HashHex(eb) || link.Host != p.Origin || link.Conference != p.Conference || ev.Destination != p.Origin {
			t.Fatalf("record %d: link %+v does not hold event %s of %s", i, link, ev.ID, ev.Conference)
		}
		if prevSeq != 0 && link.Seq != prevSeq+1 {
			t.Fatalf("record %d: seq %d after %d", i, link.Seq, prevSeq)
		}
		prevSeq = link.Seq
		if p.Type == TypeLog {
			if link.Seq != st.conf.HeadSeq+1 || link.Prev != st.conf.HeadHash {
				t.Fatalf("record %d: seq %d prev %q after head %d %q", i, link.Seq, link.Prev, st.conf.HeadSeq, st.conf.HeadHash)
			}
			e := &event{env: r.Event, payload: ev, bytes: eb, hash: HashHex(eb)}
			if err := st.authorize(e); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			st.apply(e, link.Seq, HashHex(lb))
		}
	}
	if p.Type == TypeLog && (len(c.Records) == 0 || st.conf.Host != p.Origin) {
		t.Fatalf("the log vector does not start a conference of its host")
	}
}

// checkContentFields holds the schema and the code to the same list of
// required content fields (spec §4.4): without any field the schema
// requires, both refuse the content; without an optional one, both accept
// it; with an unknown field, both refuse it.
func checkContentFields(t *testing.T, v messageVector, raw []byte, payloadSchema *jsonschema.Schema) {
	t.Helper()
	var payload map[string]json.RawMessage
	if err := json.Unmarshal(raw, &payload); err != nil {
		t.Fatal(err)
	}
	var content map[string]json.RawMessage
	if err := json.Unmarshal(payload["content"], &content); err != nil {
		t.Fatal(err)
	}
	withContent := func(c map[string]json.RawMessage) (json.RawMessage, []byte) {
		cb, _ := json.Marshal(c)
		p := maps(payload)
		p["content"] = cb
		pb, _ := json.Marshal(p)
		return cb, pb
	}
	decode := contentDecoders[v.Type]
	for field := range content {
		c := maps(content)
		delete(c, field)
		cb, pb := withContent(c)
		schemaErr, codeErr := validateDoc(payloadSchema, pb), decode(cb)
		if (schemaErr == nil) != (codeErr == nil) {
			t.Errorf("without %q: schema says %v, code says %v", field, schemaErr, codeErr)
		}
		var fe *httpapi.Error
		if codeErr != nil && (!errors.As(codeErr, &fe) || fe.Status != 400) && v.Type != TypeTrunkOffer && v.Type != TypeTrunkAnswer {
			t.Errorf("without %q: code refuses with %v, want 400", field, codeErr)
		}
	}
	c := maps(content)
	c["zz"] = json.RawMessage(`1`)
	cb, pb := withContent(c)
	if validateDoc(payloadSchema, pb) == nil || decode(cb) == nil {
		t.Errorf("an unknown content field is accepted")
	}
}

func maps(m map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
