package bridge

import (
	"context"
	"errors"
	"fmt"
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
// been invited (or the room be public); it joins and, when it may, lets
// members send call memberships.
func (b *Bridge) LinkRoom(ctx context.Context, conference, roomID string) error {
	defer b.locks.lock(conference)()
	p, err := b.o.Store.GetBridgePortal(ctx, conference)
	switch {
	case err == nil && p.RoomID == roomID:
		return nil
	case err == nil:
		return fmt.Errorf("bridge: conference %s is already bridged to room %s: %w", conference, p.RoomID, store.ErrConflict)
	case !errors.Is(err, store.ErrNotFound):
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
	b.allowCallMembership(ctx, room)
	err = b.o.Store.PutBridgePortal(ctx, store.BridgePortal{Conference: conference, RoomID: roomID, LinkedAt: time.Now()})
	if err != nil {
		return fmt.Errorf("bridge: record portal room %s of %s: %w", roomID, conference, err)
	}
	b.log.Info("portal room linked", "conference", conference, "room", roomID)
	return nil
}

// allowCallMembership lowers the power level call memberships need to 0 in a
// linked room, if the bot may change power levels. Without it, ghosts cannot
// show who is in the call, so the failure is logged rather than hidden.
func (b *Bridge) allowCallMembership(ctx context.Context, room id.RoomID) {
	bot := b.bot()
	pl, err := bot.PowerLevels(ctx, room)
	if err != nil {
		b.log.Warn("read power levels of linked room", "room", room.String(), "err", err)
		return
	}
	if level, ok := pl.Events[callMemberType.Type]; ok && level == 0 {
		return
	}
	if pl.Events == nil {
		pl.Events = make(map[string]int)
	}
	pl.Events[callMemberType.Type] = 0
	if _, err := bot.SetPowerLevels(ctx, room, pl); err != nil {
		b.log.Warn("linked room does not let members send call memberships and the bot cannot change that",
			"room", room.String(), "err", err)
	}
}

func portalTopic(c Conference) string {
	host := c.HostName
	if host == "" {
		host = c.Host
	}
	return "Entente conference hosted by " + host
}
