package federation

import (
	"encoding/json"
	"testing"

	"github.com/entente-org/entente/identity"
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
