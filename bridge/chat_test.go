package bridge

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func brunoSignal(sigID, kind, text, ref string) Signal {
	return Signal{Conference: "conf-budget", ID: sigID, Kind: kind, User: bruno.User, Text: text, Ref: ref,
		Organisation: bruno.Organisation, At: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)}
}

// messagesFrom returns the m.room.message events sender sent, oldest first.
func messagesFrom(t *testing.T, cli *mautrix.Client, room id.RoomID, sender id.UserID) []*event.Event {
	t.Helper()
	var out []*event.Event
	for _, e := range ofType(timeline(t, cli, room), event.EventMessage.Type) {
		if e.Sender == sender {
			out = append(out, e)
		}
	}
	return out
}

// waitMessagesFrom reads sender's messages until there are at least n (for
// at most 10 s): the homeserver's timeline trails its writes.
func waitMessagesFrom(t *testing.T, cli *mautrix.Client, room id.RoomID, sender id.UserID, n int) []*event.Event {
	t.Helper()
	var out []*event.Event
	waitFor(t, fmt.Sprintf("%d messages from %s", n, sender), func() (bool, error) {
		out = messagesFrom(t, cli, room, sender)
		return len(out) >= n, nil
	})
	return out
}

// waitForChat waits until SendChat was called n times.
func waitForChat(t *testing.T, e *env, n int) []sentChat {
	t.Helper()
	waitFor(t, "SendChat to be called", func() (bool, error) { return len(e.chat.all()) >= n, nil })
	return e.chat.all()
}

func TestChatFromEntenteToMatrix(t *testing.T) {
	m := newMatrixSetup(t)
	ctx := t.Context()
	conf := budgetConference()
	conf.Participants = []Participant{bruno}
	room := m.portalWithAlice(t, conf)
	brunoGhost := m.b.ghostUser(bruno.User)

	// A line: Bruno's ghost says it, named with his organisation.
	if err := m.b.OnSignal(ctx, brunoSignal("sig-b1", "chat", "Les chiffres sont prêts", "")); err != nil {
		t.Fatal(err)
	}
	lines := waitMessagesFrom(t, m.alice, room, brunoGhost, 1)
	if len(lines) != 1 || lines[0].Content.Raw["msgtype"] != "m.text" || lines[0].Content.Raw["body"] != "Les chiffres sont prêts" {
		t.Fatalf("Bruno's ghost's messages: %+v", rawOf(lines))
	}
	original := lines[0].ID
	if got := stateContent(t, m.alice, room, event.StateMember, brunoGhost.String())["displayname"]; got != "Bruno Lefèvre (National Statistics Agency)" {
		t.Errorf("ghost display name = %v", got)
	}

	// An edit replaces it.
	if err := m.b.OnSignal(ctx, brunoSignal("sig-b2", "chat.edit", "Les chiffres 2027 sont prêts", "sig-b1")); err != nil {
		t.Fatal(err)
	}
	lines = waitMessagesFrom(t, m.alice, room, brunoGhost, 2)
	if len(lines) != 2 {
		t.Fatalf("Bruno's ghost sent %d messages after the edit, want 2", len(lines))
	}
	edit := lines[1].Content.Raw
	rel, _ := edit["m.relates_to"].(map[string]any)
	newContent, _ := edit["m.new_content"].(map[string]any)
	if rel["rel_type"] != "m.replace" || rel["event_id"] != original.String() ||
		newContent["msgtype"] != "m.text" || newContent["body"] != "Les chiffres 2027 sont prêts" {
		t.Errorf("edit content = %v", edit)
	}

	// Chloé cannot change Bruno's line; Bruno's redaction removes it.
	chloeEdit := Signal{Conference: "conf-budget", ID: "sig-c1", Kind: "chat.edit", User: chloe.User, Text: "Non", Ref: "sig-b1", Organisation: chloe.Organisation}
	if err := m.b.OnSignal(ctx, chloeEdit); err != nil {
		t.Fatal(err)
	}
	if msgs := messagesFrom(t, m.alice, room, m.b.ghostUser(chloe.User)); len(msgs) != 0 {
		t.Errorf("Chloé's ghost changed Bruno's line: %+v", rawOf(msgs))
	}
	if err := m.b.OnSignal(ctx, brunoSignal("sig-b3", "chat.redact", "", "sig-b1")); err != nil {
		t.Fatal(err)
	}
	// The homeserver applies a redaction to the event it names a moment
	// after accepting it.
	waitFor(t, "the redaction of the original line", func() (bool, error) {
		redacted, err := m.alice.GetEvent(ctx, room, original)
		if err != nil {
			return false, err
		}
		return len(redacted.Content.Raw) == 0 && redacted.Unsigned.RedactedBecause != nil &&
			redacted.Unsigned.RedactedBecause.Sender == brunoGhost, nil
	})

	// A line another node bridged from its Matrix users gets a ghost of its
	// own; one this node bridged is in the room already.
	remote := Signal{Conference: "conf-budget", ID: "sig-r1", Kind: "chat", User: "did:web:stats.example",
		As: "@bob:matrix.stats.example", Text: "Salut", Organisation: "National Statistics Agency"}
	echo := Signal{Conference: "conf-budget", ID: "sig-e1", Kind: "chat", User: testNodeDID,
		As: "@alice:localhost", Text: "hello from Matrix", Organisation: "Ministry of Digital Affairs"}
	for _, sig := range []Signal{remote, echo} {
		if err := m.b.OnSignal(ctx, sig); err != nil {
			t.Fatal(err)
		}
	}
	bobGhost := m.b.ghostUser("@bob:matrix.stats.example via did:web:stats.example")
	if msgs := waitMessagesFrom(t, m.alice, room, bobGhost, 1); len(msgs) != 1 || msgs[0].Content.Raw["body"] != "Salut" {
		t.Errorf("remote Matrix user's ghost messages: %+v", rawOf(msgs))
	}
	if got := stateContent(t, m.alice, room, event.StateMember, bobGhost.String())["displayname"]; got != "@bob:matrix.stats.example (National Statistics Agency)" {
		t.Errorf("remote Matrix user's ghost display name = %v", got)
	}
	before := timeline(t, m.alice, room)
	for _, e := range ofType(before, event.EventMessage.Type) {
		if e.Content.Raw["body"] == "hello from Matrix" {
			t.Errorf("the bridge's own line for Alice was posted back by %s", e.Sender)
		}
	}

	// A restarted bridge given the same signals again posts nothing.
	m.b.Stop()
	m.b = m.start(t)
	for _, sig := range []Signal{brunoSignal("sig-b1", "chat", "Les chiffres sont prêts", ""), brunoSignal("sig-b2", "chat.edit", "Les chiffres 2027 sont prêts", "sig-b1"), remote} {
		if err := m.b.OnSignal(ctx, sig); err != nil {
			t.Fatal(err)
		}
	}
	if after := timeline(t, m.alice, room); len(after) != len(before) {
		t.Errorf("the restarted bridge added %d events for signals already mirrored", len(after)-len(before))
	}

	// The ghosts' messages came back to the bridge from the homeserver, and
	// none reached the conference: once Alice's later line has, all earlier
	// events were handled.
	if _, err := m.alice.SendText(ctx, room, "fin"); err != nil {
		t.Fatal(err)
	}
	want := []sentChat{{Conference: "conf-budget", MatrixUser: "@alice:localhost", Kind: "chat", Text: "fin", SignalID: "sig-1"}}
	if got := waitForChat(t, m.env, 1); !slices.Equal(got, want) {
		t.Errorf("chat sent to the conference = %+v, want only Alice's %+v", got, want)
	}
}

func TestChatFromMatrixToEntente(t *testing.T) {
	m := newMatrixSetup(t)
	ctx := t.Context()
	conf := budgetConference()
	room := m.portalWithAlice(t, conf)
	bob := m.hs.User(ctx, "bob")
	if _, err := m.b.bot().InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}

	line, err := m.alice.SendText(ctx, room, "Bonjour depuis Matrix")
	if err != nil {
		t.Fatal(err)
	}
	want := []sentChat{{Conference: "conf-budget", MatrixUser: "@alice:localhost", Kind: "chat", Text: "Bonjour depuis Matrix", SignalID: "sig-1"}}
	if got := waitForChat(t, m.env, 1); !slices.Equal(got, want) {
		t.Fatalf("after Alice's line: %+v, want %+v", got, want)
	}

	// Bob's edit of Alice's line is not hers to make; her own edit is sent.
	edit := func(cli *mautrix.Client, text string) {
		content := &event.MessageEventContent{MsgType: event.MsgText, Body: text}
		content.SetEdit(line.EventID)
		if _, err := cli.SendMessageEvent(ctx, room, event.EventMessage, content); err != nil {
			t.Fatal(err)
		}
	}
	edit(bob, "Bob was here")
	edit(m.alice, "Bonjour à tous depuis Matrix")
	want = append(want, sentChat{Conference: "conf-budget", MatrixUser: "@alice:localhost", Kind: "chat.edit", Text: "Bonjour à tous depuis Matrix", Ref: "sig-1", SignalID: "sig-2"})
	if got := waitForChat(t, m.env, 2); !slices.Equal(got, want) {
		t.Fatalf("after the edits: %+v, want %+v", got, want)
	}

	// Her redaction, and Bob's attempt at one. Dendrite v0.13.8 does not
	// push redactions to appservices (element-hq/dendrite#3445), so the
	// test hands the bridge the transaction a homeserver that does would
	// send; the redactions themselves are real.
	redaction := func(cli *mautrix.Client, target id.EventID) map[string]any {
		resp, err := cli.RedactEvent(ctx, room, target)
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{
			"type": "m.room.redaction", "room_id": room.String(), "event_id": resp.EventID.String(),
			"sender": cli.UserID.String(), "redacts": target.String(), "content": map[string]any{},
			"origin_server_ts": time.Now().UnixMilli(),
		}
	}
	bobLine, err := bob.SendText(ctx, room, "Bob's first line")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, sentChat{Conference: "conf-budget", MatrixUser: "@bob:localhost", Kind: "chat", Text: "Bob's first line", SignalID: "sig-3"})
	if got := waitForChat(t, m.env, 3); !slices.Equal(got, want) {
		t.Fatalf("after Bob's line: %+v, want %+v", got, want)
	}
	// Bob's redaction of Alice's line would need power he lacks; the
	// bridge is shown the event as if a moderator-less homeserver let it
	// through.
	forged := map[string]any{
		"type": "m.room.redaction", "room_id": room.String(), "event_id": "$bob-redacts-alice",
		"sender": bob.UserID.String(), "redacts": line.EventID.String(), "content": map[string]any{},
		"origin_server_ts": time.Now().UnixMilli(),
	}
	if got := pushEvents(t, m.b, m.reg.ServerToken, "test-redactions", forged, redaction(m.alice, line.EventID), redaction(bob, bobLine.EventID)); got != http.StatusOK {
		t.Fatalf("redaction transaction: status %d", got)
	}
	want = append(want,
		sentChat{Conference: "conf-budget", MatrixUser: "@alice:localhost", Kind: "chat.redact", Ref: "sig-1", SignalID: "sig-4"},
		sentChat{Conference: "conf-budget", MatrixUser: "@bob:localhost", Kind: "chat.redact", Ref: "sig-3", SignalID: "sig-5"})
	if got := waitForChat(t, m.env, 5); !slices.Equal(got, want) {
		t.Fatalf("after the redactions: %+v, want %+v", got, want)
	}

	// The ghost's and the bot's own messages stay in Matrix; Bob's line,
	// sent after them, shows they were handled.
	conf.Participants = []Participant{bruno}
	m.confs.set(conf)
	if err := m.b.OnSignal(ctx, brunoSignal("sig-b1", "chat", "Bonjour", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.b.bot().SendText(ctx, room, "bot notice"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendText(ctx, room, "Bob's line"); err != nil {
		t.Fatal(err)
	}
	want = append(want, sentChat{Conference: "conf-budget", MatrixUser: "@bob:localhost", Kind: "chat", Text: "Bob's line", SignalID: "sig-6"})
	// Events are handled in order: a ghost's or the bot's line would have
	// reached SendChat before Bob's.
	if got := waitForChat(t, m.env, 6); !slices.Equal(got, want) {
		t.Errorf("chat sent to the conference = %+v, want %+v", got, want)
	}

	// The mapping is kept: Alice's line is signal sig-1.
	got, err := m.store.GetBridgeEventByMatrixID(ctx, line.EventID.String())
	if err != nil || got.Item != "matrix-chat:sig-1" || got.Conference != "conf-budget" || got.RoomID != room.String() {
		t.Errorf("mapping of Alice's line = %+v, %v", got, err)
	}
}

// A Matrix line over the conference's limit is not sent: the bot answers it
// in the room with a notice naming the limit. A line at the limit goes
// through.
func TestMatrixLineOverTheLimitIsAnswered(t *testing.T) {
	m := newMatrixSetup(t)
	ctx := t.Context()
	room := m.portalWithAlice(t, budgetConference())
	long := strings.Repeat("é", 2001) // 4002 bytes
	sent, err := m.alice.SendText(ctx, room, long)
	if err != nil {
		t.Fatal(err)
	}
	notices := waitMessagesFrom(t, m.alice, room, m.b.botUser(), 1)
	got := notices[len(notices)-1].Content.Raw
	if got["msgtype"] != "m.notice" ||
		got["body"] != "Not sent to the conference: a line may have at most 4000 bytes, and this one has 4002." {
		t.Fatalf("bot's answer: %v", got)
	}
	reply, _ := got["m.relates_to"].(map[string]any)["m.in_reply_to"].(map[string]any)
	if reply["event_id"] != sent.EventID.String() {
		t.Errorf("notice replies to %v, want %s", reply, sent.EventID)
	}
	atLimit := strings.Repeat("a", 4000)
	if _, err := m.alice.SendText(ctx, room, atLimit); err != nil {
		t.Fatal(err)
	}
	chat := waitForChat(t, m.env, 1)
	if len(chat) != 1 || chat[0].Text != atLimit {
		t.Errorf("chat sent to the conference: %d lines, first %.20q…; want only the 4000-byte line", len(chat), chat[0].Text)
	}
}
