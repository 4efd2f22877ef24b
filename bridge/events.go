package bridge

import (
	"context"
	"errors"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/entente-org/entente/store"
)

// handleEvents registers what the bridge does with events the homeserver
// pushes to it.
func (b *Bridge) handleEvents() {
	b.ep.On(event.StateMember, b.onMember)
	b.ep.On(event.EventMessage, b.onMessage)
}

// onMember notes invitations of the bot: a room only becomes a portal when
// an operator links it to a conference (LinkRoom), never by invitation alone.
func (b *Bridge) onMember(_ context.Context, evt *event.Event) {
	if evt.GetStateKey() != b.botUser().String() {
		return
	}
	if m, _ := evt.Content.Raw["membership"].(string); event.Membership(m) == event.MembershipInvite {
		b.log.Info("bot invited to a room; link it to a conference to bridge it",
			"room", evt.RoomID.String(), "sender", evt.Sender.String())
	}
}

// onMessage records each message Matrix users send in a portal room, so that
// chat mirroring finds which Matrix event an Entente chat line stands for.
func (b *Bridge) onMessage(ctx context.Context, evt *event.Event) {
	if evt.Sender == b.botUser() || b.isGhost(evt.Sender) {
		return
	}
	p, err := b.o.Store.GetBridgePortalByRoom(ctx, evt.RoomID.String())
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		b.log.Error("look up portal of message", "room", evt.RoomID.String(), "err", err)
		return
	}
	err = b.o.Store.PutBridgeEvent(ctx, store.BridgeEvent{
		Conference: p.Conference,
		Item:       matrixMessageItemPrefix + evt.ID.String(),
		RoomID:     evt.RoomID.String(),
		EventID:    evt.ID.String(),
		CreatedAt:  time.UnixMilli(evt.Timestamp),
	})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		b.log.Error("record Matrix message", "conference", p.Conference, "room", evt.RoomID.String(), "err", err)
	}
}
