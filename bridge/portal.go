package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/store"
)

// Matrix event types the bridge sends beyond the spec's own.
var (
	// callMemberType is MatrixRTC call membership (MSC3401), as Element
	// Call sends it.
	callMemberType = event.Type{Type: "org.matrix.msc3401.call.member", Class: event.StateEventType}
	// widgetType is the room widget Element shows as a button into the call.
	widgetType = event.Type{Type: "im.vector.modular.widgets", Class: event.StateEventType}
	// rtcNotificationType rings the room's members (MSC4075).
	rtcNotificationType = event.Type{Type: "org.matrix.msc4075.rtc.notification", Class: event.MessageEventType}
)

// Power levels of portal rooms the bridge creates: members join the call
// (call.member at 0) but only moderators change the widget.
const (
	botPowerLevel    = 100
	widgetPowerLevel = 50
)

// Portal returns the conference's portal room, creating it (as the bot) the
// first time. The room is named after the conference and its topic names the
// host organisation. Call Sync afterwards to bring participants in.
func (b *Bridge) Portal(ctx context.Context, conference string) (string, error) {
	defer b.locks.lock(conference)()
	p, err := b.o.Store.GetBridgePortal(ctx, conference)
	if err == nil {
		return p.RoomID, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("bridge: portal of %s: %w", conference, err)
	}
	conf, err := b.o.Conferences.Conference(ctx, conference)
	if err != nil {
		return "", fmt.Errorf("bridge: portal of %s: %w", conference, err)
	}
	bot := b.bot()
	if err := bot.EnsureRegistered(ctx); err != nil {
		return "", fmt.Errorf("bridge: portal of %s: register bot: %w", conference, err)
	}
	resp, err := bot.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Name:   conf.Title,
		Topic:  portalTopic(conf),
		Preset: "private_chat",
		PowerLevelOverride: &event.PowerLevelsEventContent{
			Users: map[id.UserID]int{b.botUser(): botPowerLevel},
			Events: map[string]int{
				callMemberType.Type: 0,
				widgetType.Type:     widgetPowerLevel,
			},
		},
	})
	if err != nil {
		return "", fmt.Errorf("bridge: create portal room for %s: %w", conference, err)
	}
	err = b.o.Store.PutBridgePortal(ctx, store.BridgePortal{
		Conference: conference, RoomID: resp.RoomID.String(), Created: true, LinkedAt: time.Now(),
	})
	if err != nil {
		return "", fmt.Errorf("bridge: record portal room %s of %s: %w", resp.RoomID, conference, err)
	}
	b.log.Info("portal room created", "conference", conference, "room", resp.RoomID.String())
	return resp.RoomID.String(), nil
}

// LinkRoom makes an existing room the conference's portal. The bot must have
// been invited (or the room be public); it joins, lets members send call
// memberships when it may, and checks that it has every power level the
// bridge needs (see PowerLevelsError). Without them the room is not linked;
// linking it again once an operator fixed them finishes the job, as it does
// for a room linked before.
func (b *Bridge) LinkRoom(ctx context.Context, conference, roomID string) error {
	defer b.locks.lock(conference)()
	p, err := b.o.Store.GetBridgePortal(ctx, conference)
	linked := err == nil
	switch {
	case linked && p.RoomID != roomID:
		return fmt.Errorf("bridge: conference %s is already bridged to room %s: %w", conference, p.RoomID, store.ErrConflict)
	case !linked && !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("bridge: link room %s to %s: %w", roomID, conference, err)
	}
	if _, err := b.o.Conferences.Conference(ctx, conference); err != nil {
		return fmt.Errorf("bridge: link room %s to %s: %w", roomID, conference, err)
	}
	room := id.RoomID(roomID)
	bot := b.bot()
	if err := bot.EnsureJoined(ctx, room); err != nil {
		return fmt.Errorf("bridge: bot cannot join room %s (invite it first): %w", roomID, err)
	}
	if err := b.checkPowerLevels(ctx, room); err != nil {
		return err
	}
	if linked {
		b.log.Info("portal room linked again", "conference", conference, "room", roomID)
		return nil
	}
	err = b.o.Store.PutBridgePortal(ctx, store.BridgePortal{Conference: conference, RoomID: roomID, LinkedAt: time.Now()})
	if err != nil {
		return fmt.Errorf("bridge: record portal room %s of %s: %w", roomID, conference, err)
	}
	b.log.Info("portal room linked", "conference", conference, "room", roomID)
	return nil
}

// PowerLevelsError is a room where the bridge lacks power levels it needs:
// Missing names each one, with the level it needs and the level it has.
type PowerLevelsError struct {
	Room    string
	Missing []string
}

func (e *PowerLevelsError) Error() string {
	return "bridge: room " + e.Room + " lacks power levels the bridge needs: " + strings.Join(e.Missing, "; ")
}

// checkPowerLevels lowers the level call memberships need to members' own,
// when the bot may, and then checks every level the bridge needs:
//   - the bot invites ghosts (invite), posts the join link and notices
//     (m.room.message), rings (org.matrix.msc4075.rtc.notification) and
//     manages the call widget (im.vector.modular.widgets);
//   - members, ghosts included, send chat (m.room.message) and call
//     memberships (org.matrix.msc3401.call.member) at users_default.
func (b *Bridge) checkPowerLevels(ctx context.Context, room id.RoomID) error {
	pl, err := b.powerLevels(ctx, room)
	if err != nil {
		return err
	}
	botLevel := pl.GetUserLevel(b.botUser())
	if pl.GetEventLevel(callMemberType) > pl.UsersDefault &&
		botLevel >= pl.GetEventLevel(event.StatePowerLevels) && botLevel >= pl.GetEventLevel(callMemberType) {
		pl.SetEventLevel(callMemberType, pl.UsersDefault)
		if _, err := b.bot().SetPowerLevels(ctx, room, pl); err != nil {
			return fmt.Errorf("bridge: let members send call memberships in room %s: %w", room, err)
		}
		b.log.Info("call memberships allowed to members", "room", room.String())
	}
	var missing []string
	needBot := func(what string, level int) {
		if botLevel < level {
			missing = append(missing, fmt.Sprintf("the bot %s needs power level %d for %s, and has %d", b.botUser(), level, what, botLevel))
		}
	}
	needMembers := func(what string, level int) {
		if pl.UsersDefault < level {
			missing = append(missing, fmt.Sprintf("members need power level %d for %s, and have %d (users_default)", level, what, pl.UsersDefault))
		}
	}
	needBot("invites", pl.Invite())
	needBot(event.EventMessage.Type+" events", pl.GetEventLevel(event.EventMessage))
	needBot(rtcNotificationType.Type+" events", pl.GetEventLevel(rtcNotificationType))
	needBot(widgetType.Type+" events", pl.GetEventLevel(widgetType))
	needMembers(event.EventMessage.Type+" events", pl.GetEventLevel(event.EventMessage))
	needMembers(callMemberType.Type+" events", pl.GetEventLevel(callMemberType))
	if len(missing) > 0 {
		return &PowerLevelsError{Room: room.String(), Missing: missing}
	}
	return nil
}

func portalTopic(c Conference) string {
	host := c.HostName
	if host == "" {
		host = c.Host
	}
	return "Entente conference hosted by " + host
}

// ErrBadMatrixUser is a Matrix user id that is not one.
var ErrBadMatrixUser = errors.New("not a Matrix user id")

// Invite has the bot invite Matrix users to the conference's portal room,
// so that they find it in their Matrix client, join it, and from there the
// call (README, "Bridging Matrix"). Users already in the room or invited
// are left alone. It returns the users it invited.
func (b *Bridge) Invite(ctx context.Context, conference string, users []string) ([]string, error) {
	for _, u := range users {
		if _, _, err := id.UserID(u).Parse(); err != nil || !strings.HasPrefix(u, "@") {
			return nil, fmt.Errorf("%q: %w (\"@name:server\")", u, ErrBadMatrixUser)
		}
	}
	defer b.locks.lock(conference)()
	p, err := b.o.Store.GetBridgePortal(ctx, conference)
	if err != nil {
		return nil, fmt.Errorf("bridge: invite to the room of %s: %w", conference, err)
	}
	room := id.RoomID(p.RoomID)
	bot := b.bot()
	invited := []string{}
	for _, u := range users {
		var member event.MemberEventContent
		err := bot.StateEvent(ctx, room, event.StateMember, u, &member)
		if err != nil && !errors.Is(err, mautrix.MNotFound) {
			return invited, fmt.Errorf("bridge: membership of %s in room %s: %w", u, room, err)
		}
		if member.Membership == event.MembershipJoin || member.Membership == event.MembershipInvite {
			continue
		}
		if _, err := bot.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: id.UserID(u)}); err != nil {
			return invited, fmt.Errorf("bridge: invite %s to room %s: %w", u, room, err)
		}
		b.log.Info("Matrix user invited to portal room", "conference", conference, "room", room.String(), "user", u)
		invited = append(invited, u)
	}
	return invited, nil
}

// powerLevels reads room's power levels from the homeserver, not mautrix's
// cache (the operator may just have fixed them, before the change reached
// the bridge in a transaction), with the create event that decides the
// creator's level.
func (b *Bridge) powerLevels(ctx context.Context, room id.RoomID) (*event.PowerLevelsEventContent, error) {
	bot := b.bot()
	pl := &event.PowerLevelsEventContent{}
	if err := bot.Client.StateEvent(ctx, room, event.StatePowerLevels, "", pl); err != nil {
		return nil, fmt.Errorf("bridge: read power levels of room %s: %w", room, err)
	}
	create, err := bot.Client.FullStateEvent(ctx, room, event.StateCreate, "")
	if err != nil {
		return nil, fmt.Errorf("bridge: read creation of room %s: %w", room, err)
	}
	pl.CreateEvent = create
	return pl, nil
}
