package bridge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/dendritetest"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// Linking a room where the bot lacks power levels answers 403 naming each
// one, and links nothing; linking it again once the room's owner fixed them
// finishes the job: members may send call memberships and the call shows.
func TestLinkRoomChecksPowerLevels(t *testing.T) {
	f, n, hs := startBridgedNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice, aliceTok := nodetest.User(t, n, "alice", "Alice Martin")
	if _, err := accounts.AddUser(ctx, n.Store(), "root", "Admin", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	adminTok, _ := accounts.IssueToken(ctx, n.Store(), "root", time.Hour, time.Now())
	admin := newAPI(t, f, n, adminTok)
	conf, err := n.Federation().CreateConference(ctx, alice, "Budget 2027", nil)
	if err != nil {
		t.Fatal(err)
	}
	newAPI(t, f, n, aliceTok).call("POST", "/api/v1/conferences/"+conf.ID+"/join", nil, nil, 200)

	mona := hs.User(ctx, "mona")
	bot := id.NewUserID("entente", dendritetest.ServerName)
	fifty := 50
	room, err := mona.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat",
		PowerLevelOverride: &event.PowerLevelsEventContent{
			Users:     map[id.UserID]int{mona.UserID: 100},
			Events:    map[string]int{"org.matrix.msc3401.call.member": 50, "im.vector.modular.widgets": 50, "m.room.power_levels": 100},
			InvitePtr: &fifty,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mona.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bot}); err != nil {
		t.Fatal(err)
	}
	link := map[string]string{"room_id": room.RoomID.String()}
	code, body := admin.do("POST", "/admin/v1/conferences/"+conf.ID+"/matrix", link)
	want := `{"error":{"code":"forbidden","message":"matrix room ` + room.RoomID.String() + ` lacks power levels the bridge needs: ` +
		`the bot @entente:localhost needs power level 50 for invites, and has 0; ` +
		`the bot @entente:localhost needs power level 50 for im.vector.modular.widgets events, and has 0; ` +
		`members need power level 50 for org.matrix.msc3401.call.member events, and have 0 (users_default)"}}`
	if code != 403 || body != want {
		t.Fatalf("link with the bot powerless: %d %s\nwant 403 %s", code, body, want)
	}
	if _, err := n.Store().GetBridgePortal(ctx, conf.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the room was linked anyway: %v", err)
	}

	// Mona makes the bot an administrator of her room and links again.
	var pl event.PowerLevelsEventContent
	if err := mona.StateEvent(ctx, room.RoomID, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	pl.Users[bot] = 100
	if _, err := mona.SendStateEvent(ctx, room.RoomID, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	var linked map[string]any
	admin.call("POST", "/admin/v1/conferences/"+conf.ID+"/matrix", link, &linked, 200)
	if linked["room_id"] != room.RoomID.String() {
		t.Fatalf("linked %v", linked)
	}
	if err := mona.StateEvent(ctx, room.RoomID, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	if got := pl.GetEventLevel(event.Type{Type: "org.matrix.msc3401.call.member", Class: event.StateEventType}); got != 0 {
		t.Errorf("call memberships need power level %d after the link, want 0", got)
	}
	// Alice is in the call: her ghost's membership and the widget show.
	nodetest.Eventually(t, 30*time.Second, "Alice's call membership and the widget in the room", func() bool {
		state, err := mona.State(ctx, room.RoomID)
		if err != nil {
			return false
		}
		members := 0
		for _, evt := range state[event.Type{Type: "org.matrix.msc3401.call.member", Class: event.StateEventType}] {
			if len(evt.Content.Raw) > 0 {
				members++
			}
		}
		widgets := state[event.Type{Type: "im.vector.modular.widgets", Class: event.StateEventType}]
		return members == 1 && len(widgets) == 1
	})
}
