package federation_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// peerAnswer is what a node answered a peer's signed request: its status
// and, for a refusal, the error's code and message.
type peerAnswer struct {
	status        int
	code, message string
	raw           string
}

// peerPost sends body to to's inbox signed by from, as from's outbox would.
func peerPost(t *testing.T, f *nodetest.Federation, from, to *nodetest.Node, body []byte) peerAnswer {
	t.Helper()
	c := &federation.Client{HTTP: f.Client(), DID: from.DID(), Keys: from.Keys(), Now: time.Now}
	status, b, err := c.Do(context.Background(), http.MethodPost, to.FederationEndpoint()+"/inbox", body)
	if err != nil {
		t.Fatalf("post to %s: %v", to.Name(), err)
	}
	a := peerAnswer{status: status, raw: string(b)}
	if status != http.StatusOK {
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Fatalf("status %d with a body that is not an error object: %q", status, b)
		}
		a.code, a.message = eb.Error.Code, eb.Error.Message
	}
	return a
}

// sealed signs p with its origin node's real key and returns the envelope.
func sealed(t *testing.T, by *nodetest.Node, p federation.Payload) federation.Envelope {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	env, err := federation.Seal(by.DID(), by.Keys(), b)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signalOf is a conference.signal of sender (a user of from, or from
// itself) to the conference's host.
func (sc *signalCall) signalOf(from *nodetest.Node, sender, content string) federation.Payload {
	now := time.Now()
	return federation.Payload{
		ID: federation.NewMessageID(), Type: federation.TypeSignal, Origin: from.DID(), Destination: sc.a.DID(),
		Sender: sender, Conference: sc.conference, Created: now.UnixMilli(), Expires: now.Add(time.Minute).UnixMilli(),
		Content: json.RawMessage(content),
	}
}

// outboxSize is how many messages n has ever queued.
func outboxSize(t *testing.T, n *nodetest.Node) int {
	t.Helper()
	out, err := n.Store().ListOutbox(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return len(out)
}

// Only a chat line's author edits or redacts it (spec §5.2): the host
// refuses another organisation's change with 403 and relays nothing, a
// member node refuses it when a host relays it anyway, and local users of
// either node are held to the same rule by their own node.
func TestChatChangesOnlyByTheirAuthor(t *testing.T) {
	sc := newSignalCall(t)
	a, b, c, logs := sc.a, sc.b, sc.c, sc.logs
	ctx := context.Background()
	const matrixUser = "@dora:matrix.agency.example"

	say := func(n *nodetest.Node, u localuser.User, k federation.SignalContent) federation.Signal {
		t.Helper()
		sig, err := n.Federation().SendSignal(ctx, u, sc.conference, k)
		if err != nil {
			t.Fatalf("%s: %v", k.Kind, err)
		}
		return sig
	}
	chloeLine := say(c, sc.chloe, federation.SignalContent{Kind: "chat", Text: "Le budget est validé"})
	aliceLine := say(a, sc.alice, federation.SignalContent{Kind: "chat", Text: "Merci à tous"})
	brunoLine := say(b, sc.bruno, federation.SignalContent{Kind: "chat", Text: "Les chiffres arrivent"})
	doraLine := say(b, localuser.User{}, federation.SignalContent{Kind: "chat", Text: "Depuis Matrix", As: matrixUser})
	for _, n := range []*nodetest.Node{a, b, c} {
		nodetest.Eventually(t, wait, "the four lines at "+n.Name(), func() bool { return len(logs[n].all()) == 4 })
	}
	// An answer the host must refuse: the status, the code and the reason.
	type refusal struct {
		name    string
		sender  string
		content string
		message string
	}
	bruno, chloe, alice := "bruno@"+b.DID(), "chloe@"+c.DID(), "alice@"+a.DID()
	refusals := []refusal{
		{"edit of another organisation's line", bruno, `{"kind":"chat.edit","ref":"` + chloeLine.ID + `","text":"Le budget est refusé"}`,
			"chat.edit of chat line " + chloeLine.ID + " by " + bruno + ": only its author " + chloe + " may change it"},
		{"redaction of the host's line", bruno, `{"kind":"chat.redact","ref":"` + aliceLine.ID + `"}`,
			"chat.redact of chat line " + aliceLine.ID + " by " + bruno + ": only its author " + alice + " may change it"},
		{"bridged edit of a participant's line", b.DID(), `{"kind":"chat.edit","ref":"` + chloeLine.ID + `","text":"x","as":"` + matrixUser + `"}`,
			"chat.edit of chat line " + chloeLine.ID + " by " + matrixUser + " via " + b.DID() + ": only its author " + chloe + " may change it"},
		{"a user's edit of the bridged line of their own node", bruno, `{"kind":"chat.edit","ref":"` + doraLine.ID + `","text":"x"}`,
			"only its author " + matrixUser + " via " + b.DID() + " may change it"},
		{"redaction of a line that does not exist", bruno, `{"kind":"chat.redact","ref":"01JDX4G3Y3ZC9QK4W7A1B2C3D4"}`,
			"no chat line 01JDX4G3Y3ZC9QK4W7A1B2C3D4 in conference " + sc.conference},
	}
	queued := outboxSize(t, a)
	for _, r := range refusals {
		got := peerPost(t, sc.f, b, a, mustJSON(t, sealed(t, b, sc.signalOf(b, r.sender, r.content))))
		if got.status != http.StatusForbidden || got.code != "forbidden" || !strings.Contains(got.message, r.message) {
			t.Errorf("%s: host answered %d %q %q, want 403 forbidden containing %q", r.name, got.status, got.code, got.message, r.message)
		}
	}
	if n := outboxSize(t, a); n != queued {
		t.Errorf("the host queued %d messages for refused changes", n-queued)
	}

	// Local users, through their own node's client API and service.
	api := clientFor(t, sc.f, a, sc.aliceToken)
	if status, raw := api.do("POST", "/conferences/"+sc.conference+"/signals",
		map[string]string{"kind": "chat.edit", "ref": brunoLine.ID, "text": "Les chiffres sont faux"}, nil); status != http.StatusForbidden ||
		!strings.Contains(raw, `"code":"forbidden"`) || !strings.Contains(raw, "only its author "+bruno+" may change it") {
		t.Errorf("the host's user editing another's line: %d %s", status, raw)
	}
	if _, err := b.Federation().SendSignal(ctx, sc.bruno, sc.conference, federation.SignalContent{Kind: "chat.redact", Ref: chloeLine.ID}); !isStatus(err, 403) {
		t.Errorf("a member's user redacting another's line: %v", err)
	}
	if _, err := b.Federation().SendSignal(ctx, localuser.User{}, sc.conference,
		federation.SignalContent{Kind: "chat.redact", Ref: brunoLine.ID, As: matrixUser}); !isStatus(err, 403) {
		t.Errorf("the bridge redacting a participant's line: %v", err)
	}

	// A host that relays another's change anyway: the city refuses it.
	forged := sealed(t, b, sc.signalOf(b, bruno, `{"kind":"chat.edit","ref":"`+chloeLine.ID+`","text":"Le budget est refusé"}`))
	now := time.Now()
	relay := federation.Payload{
		ID: federation.NewMessageID(), Type: federation.TypeRelay, Origin: a.DID(), Destination: c.DID(), Sender: a.DID(),
		Conference: sc.conference, Created: now.UnixMilli(), Expires: now.Add(time.Minute).UnixMilli(),
		Content: mustJSON(t, federation.RelayContent{Signal: forged}),
	}
	got := peerPost(t, sc.f, a, c, mustJSON(t, sealed(t, a, relay)))
	if want := "only its author " + chloe + " may change it"; got.status != http.StatusForbidden || got.code != "forbidden" || !strings.Contains(got.message, want) {
		t.Errorf("relayed edit of another's line: city answered %d %q %q, want 403 containing %q", got.status, got.code, got.message, want)
	}
	if inboxHolds(t, c, msgKey{a.DID(), relay.ID}) {
		t.Error("the city recorded the refused relay as received")
	}

	// The authors' own changes pass, and nothing refused reached anyone:
	// after the four lines, each node has exactly these changes, in order.
	edit := say(b, sc.bruno, federation.SignalContent{Kind: "chat.edit", Ref: brunoLine.ID, Text: "Les chiffres 2027 arrivent"})
	redact := say(b, localuser.User{}, federation.SignalContent{Kind: "chat.redact", Ref: doraLine.ID, As: matrixUser})
	mine := say(a, sc.alice, federation.SignalContent{Kind: "chat.redact", Ref: aliceLine.ID})
	// Relays reach each node in the order the host queued them, so a
	// refused change that got through would show among these. Each node
	// hands its own signals over at once, hence the comparison as sets.
	want := []string{"chat.edit " + brunoLine.ID, "chat.redact " + doraLine.ID, "chat.redact " + aliceLine.ID}
	for _, n := range []*nodetest.Node{a, b, c} {
		nodetest.Eventually(t, wait, "the authors' changes at "+n.Name(), func() bool { return len(logs[n].all()) >= 7 })
		var got []string
		for _, s := range logs[n].all()[4:] {
			got = append(got, s.Kind+" "+s.Ref)
		}
		if !sameSet(got, want) {
			t.Errorf("changes at %s = %v, want %v", n.Name(), got, want)
		}
	}
	// The store remembers each line's author, and no change became a line.
	for _, id := range []string{edit.ID, redact.ID, mine.ID} {
		if _, err := c.Store().GetChatLine(ctx, sc.conference, id); err == nil {
			t.Errorf("change %s was remembered as a chat line", id)
		}
	}
	if l, err := c.Store().GetChatLine(ctx, sc.conference, doraLine.ID); err != nil || l != (store.ChatLine{
		Conference: sc.conference, ID: doraLine.ID, Sender: b.DID(), As: matrixUser, CreatedAt: l.CreatedAt}) {
		t.Errorf("the city's record of the bridged line: %+v, %v", l, err)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}
