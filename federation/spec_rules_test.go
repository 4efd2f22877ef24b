package federation

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/httpapi"
)

// ruleVector is one entry of spec/vectors/messages-invalid.json: a message
// correctly signed with the test key, which the receiving node refuses for
// a rule of spec §5.1 or §6.1, given the conference of the log in
// messages.json.
type ruleVector struct {
	Name           string          `json:"name"`
	Envelope       json.RawMessage `json:"envelope"`
	Payload        json.RawMessage `json:"payload"`
	ExpectedStatus int             `json:"expected_status"`
	Reason         string          `json:"reason"`
}

// generateRuleVectors writes spec/vectors/messages-invalid.json.
func generateRuleVectors(t *testing.T, kr *identity.Keyring, did string) {
	t.Helper()
	v := &vecSealer{t: t, kr: kr, did: did, n: 50}
	const member = "did:web:agency.example"
	alice, bob, dave := UserRef("alice", did), UserRef("bob", member), UserRef("dave", did)
	var out []ruleVector
	add := func(name string, status int, reason, typ, destination, sender string, content any) {
		life := vecLifetime
		if typ == TypeSignal {
			life = vecSignalLife
		}
		env, b := v.seal(typ, destination, sender, content, life)
		e, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ruleVector{Name: name, Envelope: e, Payload: b, ExpectedStatus: status, Reason: reason})
	}
	join := func(user, name string) JoinContent {
		return JoinContent{User: user, DisplayName: name, Organisation: "Ministry of the Interior"}
	}
	add("invite by a non-moderator", 403, "dave is neither the creator, nor in moderators, nor the host node", TypeInvite, did, dave, InviteContent{Node: "did:web:other.example", Users: []string{}})
	add("invite of a node already invited", 409, "agency.example was invited by record 2", TypeInvite, did, alice, InviteContent{Node: member, Users: []string{}})
	add("invite of the host", 400, "the host cannot invite itself", TypeInvite, did, alice, InviteContent{Node: did, Users: []string{}})
	add("second creation", 409, "the conference exists", TypeCreate, did, alice, CreateContent{Title: "Again", Moderators: []string{}})
	add("join for another user", 403, "content.user must be the sender", TypeJoin, did, alice, join(dave, "Dave"))
	add("name with a leading space", 400, "display_name must not begin or end with white space", TypeJoin, did, dave, join(dave, " Dave"))
	add("event addressed to another node", 403, "an event's destination is the host (spec §6.1)", TypeLock, member, alice, EmptyContent{})
	add("lobby turned on twice", 409, "the lobby is on since the creation", TypeLobby, did, alice, LobbyContent{On: true})
	add("unlock of an unlocked conference", 409, "the conference is not locked", TypeUnlock, did, alice, EmptyContent{})
	add("admit of a user not waiting", 409, "bob is not in the lobby", TypeAdmit, did, alice, UserContent{User: bob})
	add("removal of a user not in", 409, "bob is not a participant", TypeRemove, did, alice, UserContent{User: bob})
	add("leave for another user", 403, "a user leaves only for themselves", TypeLeave, did, dave, UserContent{User: alice})
	add("signal: as on a raised hand", 400, "as is allowed on chat, chat.edit and chat.redact only (spec §5.1)", TypeSignal, did, did, SignalContent{Kind: SignalHand, On: true, As: "@alice:matrix.ministry.example"})
	add("signal: reaction over 32 bytes", 400, "a reaction is 1 to 32 bytes", TypeSignal, did, alice, SignalContent{Kind: SignalReaction, Text: strings.Repeat("x", 33)})
	add("signal: chat.edit without ref", 400, "chat.edit needs ref and text", TypeSignal, did, alice, SignalContent{Kind: SignalChatEdit, Text: "fixed"})
	add("signal: mute.request of no user", 400, "ref must be a user ref", TypeSignal, did, alice, SignalContent{Kind: SignalMuteRequest, Ref: "everyone"})
	add("signal: unknown kind", 400, "kind is one of the table of spec §5.1", TypeSignal, did, alice, SignalContent{Kind: "poll"})
	guest := UserRef("guest.0123456789abcdef", did)
	add("guest mark outside the guests' prefix", 403, "only localparts starting with guest. are guests (spec §6.1)", TypeKnock, did, dave,
		JoinContent{User: dave, DisplayName: "Dave (guest, unverified)", Organisation: "Ministry of the Interior", Guest: true})
	add("guest label on a user who is no guest", 400, "display_name ending in (guest, unverified) is kept for guests", TypeKnock, did, dave, join(dave, "Dave (guest, unverified)"))
	add("guest without the label", 400, "a guest's display_name ends with (guest, unverified)", TypeKnock, did, guest,
		JoinContent{User: guest, DisplayName: "Zoé", Organisation: "Ministry of the Interior", Guest: true})
	add("guests' prefix without the guest mark", 403, "localparts starting with guest. are kept for the host's guests", TypeKnock, did, guest, join(guest, "Zoé"))
	writeVector(t, "messages-invalid.json", out)
}

// TestSpecRuleVectors checks that the code refuses every vector of
// messages-invalid.json with its status: each is correctly signed, and
// breaks one rule against the conference that the log of messages.json
// makes (the events of §6.1 as the host checks them, the signals of §5.1).
func TestSpecRuleVectors(t *testing.T) {
	if *updateVectors {
		t.Skip("regenerating")
	}
	lookup, _, _ := vectorLookup(t)
	var msgs []messageVector
	readVector(t, "messages.json", &msgs)
	i := slices.IndexFunc(msgs, func(m messageVector) bool { return m.Type == TypeLog })
	var logPayload Payload
	if err := json.Unmarshal(msgs[i].Payload, &logPayload); err != nil {
		t.Fatal(err)
	}
	var lc LogContent
	if err := decodeContent(logPayload.Content, &lc); err != nil {
		t.Fatal(err)
	}
	st := newState()
	for _, r := range lc.Records {
		p, b, err := Open(context.Background(), r.Event, lookup)
		if err != nil {
			t.Fatal(err)
		}
		lb, _ := r.Link.PayloadBytes()
		link, err := decodeLink(lb)
		if err != nil {
			t.Fatal(err)
		}
		ev := &event{env: r.Event, payload: p, bytes: b, hash: HashHex(b)}
		if err := st.authorize(ev); err != nil {
			t.Fatal(err)
		}
		st.apply(ev, link.Seq, HashHex(lb))
	}

	var cases []ruleVector
	readVector(t, "messages-invalid.json", &cases)
	if len(cases) < 15 {
		t.Fatalf("only %d rule vectors", len(cases))
	}
	schemas := compileSchemas(t)
	for _, c := range cases {
		env, err := DecodeEnvelope(c.Envelope)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		p, b, err := Open(context.Background(), env, lookup)
		if err != nil {
			t.Fatalf("%s: the envelope itself is refused: %v", c.Name, err)
		}
		if !jsonEqual(t, b, c.Payload) {
			t.Fatalf("%s: payload differs from the vector's", c.Name)
		}
		before := *st
		if p.Type == TypeSignal {
			err = contentDecoders[TypeSignal](p.Content)
			// The content decodes but breaks §5.1: the schema sees it too.
			if validateDoc(schemas["payload"], b) == nil {
				t.Errorf("%s: the payload schema accepts it", c.Name)
			}
		} else {
			err = st.authorize(&event{env: env, payload: p, bytes: b, hash: HashHex(b)})
		}
		var fe *httpapi.Error
		if !errors.As(err, &fe) || fe.Status != c.ExpectedStatus {
			t.Errorf("%s: got %v, want %d (%s)", c.Name, err, c.ExpectedStatus, c.Reason)
		}
		if st.conf != before.conf || len(st.participants) != len(before.participants) || len(st.nodes) != len(before.nodes) {
			t.Errorf("%s: the refusal changed the state", c.Name)
		}
	}
}
