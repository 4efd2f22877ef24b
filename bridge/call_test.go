package bridge

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// matrixSetup is a Dendrite with the appservice registered, a running
// bridge, and Alice, a Matrix user of that homeserver.
type matrixSetup struct {
	*env
	hs    *homeserver
	b     *Bridge
	alice *mautrix.Client
}

func newMatrixSetup(t *testing.T) *matrixSetup {
	t.Helper()
	e := newEnv(t)
	hs := startHomeserver(t, e.writeRegistration(t))
	e.opts.HomeserverURL = hs.URL
	return &matrixSetup{env: e, hs: hs, b: e.start(t), alice: hs.User(t.Context(), "alice")}
}

var (
	bruno = Participant{User: "bruno@did:web:stats.example", DisplayName: "Bruno Lefèvre",
		Organisation: "National Statistics Agency", Node: "did:web:stats.example"}
	chloe = Participant{User: "chloe@did:web:ministry.example", DisplayName: "Chloé Martin",
		Organisation: "Ministry of Digital Affairs", Node: "did:web:ministry.example"}
	matrixGuest = Participant{User: "matrix-alice@did:web:ministry.example", DisplayName: "Alice",
		Organisation: "Ministry of Digital Affairs", Node: "did:web:ministry.example", MatrixUser: "@alice:localhost"}
)

func budgetConference() Conference {
	return Conference{
		ID: "conf-budget", Title: "Budget review 2027", Host: "did:web:ministry.example",
		HostName: "Ministry of Digital Affairs", JoinURL: "https://visio.ministry.example/c/conf-budget",
	}
}

// stateContent reads one state event's content as Alice sees it.
func stateContent(t *testing.T, cli *mautrix.Client, room id.RoomID, typ event.Type, key string) map[string]any {
	t.Helper()
	var content map[string]any
	if err := cli.StateEvent(t.Context(), room, typ, key, &content); err != nil {
		t.Fatalf("read %s %q in %s: %v", typ.Type, key, room, err)
	}
	return content
}

// timeline returns the room's events, oldest first, as Alice sees them.
// timeline reads a room's events, oldest first. Dendrite serves the
// timeline from a stream that trails the room a little after a write, so it
// reads until two reads 200 ms apart agree (for at most 5 s).
func timeline(t *testing.T, cli *mautrix.Client, room id.RoomID) []*event.Event {
	t.Helper()
	read := func() []*event.Event {
		resp, err := cli.Messages(t.Context(), room, "", "", mautrix.DirectionBackward, nil, 500)
		if err != nil {
			t.Fatalf("read timeline of %s: %v", room, err)
		}
		evts := make([]*event.Event, 0, len(resp.Chunk))
		for i := len(resp.Chunk) - 1; i >= 0; i-- {
			evts = append(evts, resp.Chunk[i])
		}
		return evts
	}
	evts := read()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		again := read()
		if len(again) == len(evts) && (len(evts) == 0 || again[len(again)-1].ID == evts[len(evts)-1].ID) {
			return again
		}
		evts = again
	}
	return evts
}

func ofType(evts []*event.Event, typ string) []*event.Event {
	var out []*event.Event
	for _, e := range evts {
		if e.Type.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// portalWithAlice creates the portal of c and has Alice join it, as a
// Matrix user invited by an operator would.
func (m *matrixSetup) portalWithAlice(t *testing.T, c Conference) id.RoomID {
	t.Helper()
	ctx := t.Context()
	m.confs.set(c)
	roomID, err := m.b.Portal(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	room := id.RoomID(roomID)
	if _, err := m.b.bot().InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: m.alice.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.alice.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	return room
}

func TestPortalGhostsAndCallPresence(t *testing.T) {
	m := newMatrixSetup(t)
	ctx := t.Context()
	conf := budgetConference()
	room := m.portalWithAlice(t, conf)

	// The portal: named after the conference, bot is admin, members may
	// send call memberships.
	if again, err := m.b.Portal(ctx, conf.ID); err != nil || again != room.String() {
		t.Fatalf("second Portal = %q, %v; want the same room %s", again, err, room)
	}
	if got := stateContent(t, m.alice, room, event.StateRoomName, "")["name"]; got != "Budget review 2027" {
		t.Errorf("room name = %v, want the conference title", got)
	}
	if got := stateContent(t, m.alice, room, event.StateTopic, "")["topic"]; got != "Entente conference hosted by Ministry of Digital Affairs" {
		t.Errorf("room topic = %v", got)
	}
	var pl event.PowerLevelsEventContent
	if err := m.alice.StateEvent(ctx, room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	if pl.Users[m.b.botUser()] != 100 || pl.Events[callMemberType.Type] != 0 || pl.Events[widgetType.Type] != 50 {
		t.Errorf("power levels: bot %d, call.member %d, widgets %d; want 100, 0, 50",
			pl.Users[m.b.botUser()], pl.Events[callMemberType.Type], pl.Events[widgetType.Type])
	}

	// Bruno and Chloé join the conference, and so does Alice from Matrix.
	conf.Participants = []Participant{bruno, chloe, matrixGuest}
	m.confs.set(conf)
	if err := m.b.Sync(ctx, conf.ID); err != nil {
		t.Fatal(err)
	}
	brunoGhost, chloeGhost := m.b.ghostUser(bruno.User), m.b.ghostUser(chloe.User)
	if brunoGhost.String() != "@entente_bb0a1775c76079c3fc43:localhost" {
		t.Errorf("Bruno's ghost is %s", brunoGhost)
	}
	for ghost, name := range map[id.UserID]string{
		brunoGhost: "Bruno Lefèvre (National Statistics Agency)",
		chloeGhost: "Chloé Martin (Ministry of Digital Affairs)",
	} {
		member := stateContent(t, m.alice, room, event.StateMember, ghost.String())
		if member["membership"] != "join" || member["displayname"] != name {
			t.Errorf("%s in the room: membership %v, display name %v; want join, %q", ghost, member["membership"], member["displayname"], name)
		}
	}
	// Alice is in the room herself: no ghost stands for her.
	if _, err := m.alice.FullStateEvent(ctx, room, event.StateMember, m.b.ghostUser(matrixGuest.User).String()); err == nil {
		t.Error("a ghost was made for a participant who joined from Matrix")
	}

	membership := stateContent(t, m.alice, room, callMemberType, callStateKey(brunoGhost, ghostDevice))
	createdTS, _ := membership["created_ts"].(float64)
	if createdTS <= 0 {
		t.Fatalf("call membership has no created_ts: %v", membership)
	}
	want := map[string]any{
		"application": "m.call",
		"call_id":     "",
		"scope":       "m.room",
		"device_id":   "ENTENTE",
		"expires":     float64(4 * 60 * 60 * 1000),
		// The focus is off: none is advertised.
		"focus_active":   map[string]any{"type": "livekit", "focus_selection": "oldest_membership"},
		"foci_preferred": []any{},
		"created_ts":     createdTS,
	}
	if !reflect.DeepEqual(membership, want) {
		got, _ := json.Marshal(membership)
		t.Errorf("Bruno's call membership = %s", got)
	}
	if full, err := m.alice.FullStateEvent(ctx, room, callMemberType, callStateKey(brunoGhost, ghostDevice)); err != nil || full.Sender != brunoGhost {
		t.Errorf("Bruno's call membership sent by %v (%v), want his ghost", full, err)
	}

	// The call's start is announced once: link, widget, ring.
	evts := timeline(t, m.alice, room)
	texts := ofType(evts, event.EventMessage.Type)
	if len(texts) != 1 || texts[0].Sender != m.b.botUser() ||
		texts[0].Content.Raw["body"] != "Budget review 2027 has started. Join it: https://visio.ministry.example/c/conf-budget" ||
		texts[0].Content.Raw["msgtype"] != "m.text" {
		t.Errorf("messages after the call started: %d, first %+v", len(texts), rawOf(texts))
	}
	rings := ofType(evts, rtcNotificationType.Type)
	if len(rings) != 1 || rings[0].Content.Raw["notification_type"] != "ring" || rings[0].Sender != m.b.botUser() {
		t.Errorf("ring notifications: %+v", rawOf(rings))
	}
	widget := stateContent(t, m.alice, room, widgetType, "entente-conf-budget")
	if widget["url"] != conf.JoinURL+"?widgetId=$matrix_widget_id&userId=$matrix_user_id&deviceId=$org.matrix.msc3819.matrix_device_id&roomId=$matrix_room_id" || widget["type"] != "m.custom" || widget["id"] != "entente-conf-budget" {
		t.Errorf("widget = %v", widget)
	}

	// Sync again, and again from a restarted bridge: nothing new in the room.
	before := len(evts)
	if err := m.b.Sync(ctx, conf.ID); err != nil {
		t.Fatal(err)
	}
	m.b.Stop()
	m.b = m.start(t)
	if err := m.b.Sync(ctx, conf.ID); err != nil {
		t.Fatal(err)
	}
	if after := timeline(t, m.alice, room); len(after) != before {
		t.Errorf("repeated Sync added %d events: %+v", len(after)-before, rawOf(after[before:]))
	}

	// Bruno leaves: his membership is emptied, Chloé's stays.
	conf.Participants = []Participant{chloe, matrixGuest}
	m.confs.set(conf)
	if err := m.b.Sync(ctx, conf.ID); err != nil {
		t.Fatal(err)
	}
	if got := stateContent(t, m.alice, room, callMemberType, callStateKey(brunoGhost, ghostDevice)); len(got) != 0 {
		t.Errorf("Bruno's membership after he left = %v, want {}", got)
	}
	if got := stateContent(t, m.alice, room, callMemberType, callStateKey(chloeGhost, ghostDevice)); got["application"] != "m.call" {
		t.Errorf("Chloé's membership after Bruno left = %v, want still in the call", got)
	}

	// The conference ends: everyone is out of the call and the widget goes.
	conf.Ended = true
	m.confs.set(conf)
	if err := m.b.Sync(ctx, conf.ID); err != nil {
		t.Fatal(err)
	}
	if got := stateContent(t, m.alice, room, callMemberType, callStateKey(chloeGhost, ghostDevice)); len(got) != 0 {
		t.Errorf("Chloé's membership after the end = %v, want {}", got)
	}
	if got := stateContent(t, m.alice, room, widgetType, "entente-conf-budget"); len(got) != 0 {
		t.Errorf("widget after the end = %v, want {}", got)
	}
	final := timeline(t, m.alice, room)
	if err := m.b.Sync(ctx, conf.ID); err != nil {
		t.Fatal(err)
	}
	if got := timeline(t, m.alice, room); len(got) != len(final) {
		t.Errorf("Sync of an ended conference added %d events", len(got)-len(final))
	}
	if n := len(ofType(final, event.EventMessage.Type)); n != 1 {
		t.Errorf("join link posted %d times, want once", n)
	}
}

func TestLinkRoom(t *testing.T) {
	m := newMatrixSetup(t)
	ctx := t.Context()
	conf := budgetConference()
	m.confs.set(conf)
	bot := m.b.botUser()

	// Alice's own room, where she makes the bot a moderator able to set
	// power levels but leaves call memberships at the default (50).
	resp, err := m.alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Name: "Budget team", Preset: "private_chat", Invite: []id.UserID{bot},
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{m.alice.UserID: 100, bot: 100}},
	})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	if err := m.b.LinkRoom(ctx, conf.ID, room.String()); err != nil {
		t.Fatal(err)
	}
	if got := stateContent(t, m.alice, room, event.StateMember, bot.String())["membership"]; got != "join" {
		t.Errorf("bot membership after LinkRoom = %v, want join", got)
	}
	var pl event.PowerLevelsEventContent
	if err := m.alice.StateEvent(ctx, room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	if level, ok := pl.Events[callMemberType.Type]; !ok || level != 0 {
		t.Errorf("call.member power level after LinkRoom = %d (set %t), want 0", level, ok)
	}
	if err := m.b.LinkRoom(ctx, conf.ID, room.String()); err != nil {
		t.Errorf("linking the same room again: %v", err)
	}
	if err := m.b.LinkRoom(ctx, conf.ID, "!other:localhost"); err == nil {
		t.Error("linking a second room to the conference succeeded")
	}
	if got, err := m.b.Portal(ctx, conf.ID); err != nil || got != room.String() {
		t.Errorf("Portal after LinkRoom = %q, %v; want the linked room", got, err)
	}

	// Ghosts are invited by the bot into the linked room and join the call.
	conf.Participants = []Participant{bruno}
	m.confs.set(conf)
	if err := m.b.Sync(ctx, conf.ID); err != nil {
		t.Fatal(err)
	}
	ghost := m.b.ghostUser(bruno.User)
	if got := stateContent(t, m.alice, room, callMemberType, callStateKey(ghost, ghostDevice))["device_id"]; got != ghostDevice {
		t.Errorf("Bruno's membership in the linked room: device_id %v", got)
	}

	// A room the bot was not invited to cannot be linked.
	closed, err := m.alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	other := Conference{ID: "conf-other", Title: "Other"}
	m.confs.set(other)
	if err := m.b.LinkRoom(ctx, other.ID, closed.RoomID.String()); err == nil {
		t.Error("linking a room the bot was not invited to succeeded")
	}
}

func rawOf(evts []*event.Event) []map[string]any {
	out := make([]map[string]any, 0, len(evts))
	for _, e := range evts {
		out = append(out, map[string]any{"type": e.Type.Type, "sender": e.Sender, "content": e.Content.Raw})
	}
	return out
}

func TestSyncRidesOutHomeserverRestart(t *testing.T) {
	m := newMatrixSetup(t)
	ctx := t.Context()
	conf := budgetConference()
	room := m.portalWithAlice(t, conf)
	// Enough retries for Dendrite to come back: 0.2+0.4+…+25.6s.
	m.b.Stop()
	m.opts.Retries = 8
	m.b = m.start(t)

	m.hs.Stop()
	conf.Participants = []Participant{bruno}
	m.confs.set(conf)
	done := make(chan error, 1)
	go func() { done <- m.b.Sync(ctx, conf.ID) }()
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Sync returned while the homeserver was down: %v", err)
	default:
	}
	m.hs.Start()
	if err := <-done; err != nil {
		t.Fatalf("Sync across the homeserver restart: %v", err)
	}
	ghost := m.b.ghostUser(bruno.User)
	if got := stateContent(t, m.alice, room, callMemberType, callStateKey(ghost, ghostDevice))["application"]; got != "m.call" {
		t.Errorf("Bruno's membership after the restart: application %v, want m.call", got)
	}
}

// A ghost still in the call has its membership renewed before it expires,
// without anyone calling Sync; one who left is not brought back.
func TestCallMembershipsAreRenewedBeforeExpiry(t *testing.T) {
	e := newEnv(t)
	hs := startHomeserver(t, e.writeRegistration(t))
	e.opts.HomeserverURL = hs.URL
	b, err := New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	b.lifetime, b.renewBefore, b.renewEvery = 6*time.Second, 4*time.Second, 300*time.Millisecond
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	m := &matrixSetup{env: e, hs: hs, b: b, alice: hs.User(t.Context(), "alice")}
	ctx := t.Context()
	conf := budgetConference()
	room := m.portalWithAlice(t, conf)
	conf.Participants = []Participant{bruno}
	m.confs.set(conf)
	if err := b.Sync(ctx, conf.ID); err != nil {
		t.Fatal(err)
	}
	key := callStateKey(b.ghostUser(bruno.User), ghostDevice)
	first := stateContent(t, m.alice, room, callMemberType, key)
	firstTS, _ := first["created_ts"].(float64)
	if first["expires"] != float64(6000) || firstTS <= 0 {
		t.Fatalf("Bruno's membership: %v", first)
	}
	var renewed map[string]any
	waitFor(t, "Bruno's membership to be renewed", func() (bool, error) {
		renewed = stateContent(t, m.alice, room, callMemberType, key)
		ts, _ := renewed["created_ts"].(float64)
		return ts > firstTS, nil
	})
	ts, _ := renewed["created_ts"].(float64)
	if end := time.UnixMilli(int64(firstTS) + 6000); time.UnixMilli(int64(ts)).After(end) {
		t.Errorf("renewed at %d, after the membership expired at %d", int64(ts), end.UnixMilli())
	}
	if renewed["application"] != "m.call" || renewed["device_id"] != "ENTENTE" || renewed["expires"] != float64(6000) {
		t.Errorf("renewed membership: %v", renewed)
	}

	// Bruno leaves: his membership is emptied and stays so.
	conf.Participants = nil
	m.confs.set(conf)
	if err := b.Sync(ctx, conf.ID); err != nil {
		t.Fatal(err)
	}
	left := timeline(t, m.alice, room)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if got := stateContent(t, m.alice, room, callMemberType, key); len(got) != 0 {
			t.Fatalf("membership after Bruno left: %v", got)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if after := timeline(t, m.alice, room); len(after) != len(left) {
		t.Errorf("renewal after everyone left added %d events: %+v", len(after)-len(left), rawOf(after[len(left):]))
	}
}

// A Matrix user in the call through the widget writes their own membership
// (spec/client-api.md, "The client as a Matrix widget"). Sync neither
// removes it nor counts it as the bridge's: when the first participant from
// Entente arrives, the call is still announced (link, widget, ring), and
// Alice's membership stays as she wrote it.
func TestSyncLeavesMatrixUsersMembershipsAlone(t *testing.T) {
	m := newMatrixSetup(t)
	ctx := t.Context()
	conf := budgetConference()
	room := m.portalWithAlice(t, conf)
	key := callStateKey(m.alice.UserID, m.alice.DeviceID.String())
	own := m.b.callMembership(m.alice.DeviceID.String(), room)
	if _, err := m.alice.SendStateEvent(ctx, room, callMemberType, key, own); err != nil {
		t.Fatal(err)
	}
	conf.Participants = []Participant{matrixGuest, bruno}
	m.confs.set(conf)
	if err := m.b.Sync(ctx, conf.ID); err != nil {
		t.Fatal(err)
	}
	got := stateContent(t, m.alice, room, callMemberType, key)
	if got["device_id"] != m.alice.DeviceID.String() || got["created_ts"] != float64(own["created_ts"].(int64)) {
		t.Errorf("Alice's membership after Sync: %v", got)
	}
	if w := stateContent(t, m.alice, room, widgetType, widgetStateKey(conf)); w["url"] != WidgetURL(conf.JoinURL) {
		t.Errorf("the call was not announced with Alice already in it: widget %v", w)
	}
	ghost := stateContent(t, m.alice, room, callMemberType, callStateKey(m.b.ghostUser(bruno.User), ghostDevice))
	if ghost["device_id"] != ghostDevice {
		t.Errorf("Bruno's ghost's membership: %v", ghost)
	}

	// Everyone from Entente leaves: the ghost's membership goes, Alice's stays.
	conf.Participants = []Participant{matrixGuest}
	m.confs.set(conf)
	if err := m.b.Sync(ctx, conf.ID); err != nil {
		t.Fatal(err)
	}
	if got := stateContent(t, m.alice, room, callMemberType, key); got["device_id"] != m.alice.DeviceID.String() {
		t.Errorf("Alice's membership after the ghosts left: %v", got)
	}
	if ghost := stateContent(t, m.alice, room, callMemberType, callStateKey(m.b.ghostUser(bruno.User), ghostDevice)); len(ghost) != 0 {
		t.Errorf("Bruno's ghost's membership after he left: %v", ghost)
	}
}
