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
	b.ep.On(event.EventRedaction, b.onRedaction)
	b.ep.On(callMemberType, b.onCallMember)
}

// onCallMember follows the call memberships Matrix users write themselves:
// when a user's last one in a portal room ends, the Leaver is told (it
// takes out of the conference those who came through Element Call's
// focus; the client as a widget leaves by the client API itself).
func (b *Bridge) onCallMember(ctx context.Context, evt *event.Event) {
	if b.o.Leaver == nil || evt.Sender == b.botUser() || b.isGhost(evt.Sender) || isActive(evt) {
		return
	}
	p, err := b.o.Store.GetBridgePortalByRoom(ctx, evt.RoomID.String())
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			b.log.Error("look up portal of a call membership", "room", evt.RoomID.String(), "err", err)
		}
		return
	}
	state, err := b.bot().State(ctx, evt.RoomID)
	if err != nil {
		b.log.Warn("call membership ended: room state not read", "room", evt.RoomID.String(), "err", err)
		return
	}
	for _, current := range stateOf(state, callMemberType.Type) {
		if current.Sender == evt.Sender && isActive(current) {
			return // still in the call, on another device or again
		}
	}
	if err := b.o.Leaver.LeaveGuest(ctx, p.Conference, evt.Sender.String()); err != nil {
		b.log.Warn("Matrix user left the call but not the conference", "conference", p.Conference, "user", evt.Sender.String(), "err", err)
		return
	}
	b.log.Info("Matrix user left the call", "conference", p.Conference, "user", evt.Sender.String())
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

// onMessage sends the messages Matrix users write in a portal room into the
// conference. The bot's and the ghosts' own messages came from Entente and
// are not sent back.
func (b *Bridge) onMessage(ctx context.Context, evt *event.Event) {
	if conference, ok := b.portalOfMatrixUser(ctx, evt); ok {
		b.chatFromMatrix(ctx, conference, evt)
	}
}

// onRedaction sends a Matrix user's redaction of their own line into the
// conference.
func (b *Bridge) onRedaction(ctx context.Context, evt *event.Event) {
	if conference, ok := b.portalOfMatrixUser(ctx, evt); ok {
		b.redactionFromMatrix(ctx, conference, evt)
	}
}

// portalOfMatrixUser is the conference of evt's room, when evt was sent
// there by a Matrix user rather than by the appservice's own users.
func (b *Bridge) portalOfMatrixUser(ctx context.Context, evt *event.Event) (string, bool) {
	if evt.Sender == b.botUser() || b.isGhost(evt.Sender) {
		return "", false
	}
	p, err := b.o.Store.GetBridgePortalByRoom(ctx, evt.RoomID.String())
	if errors.Is(err, store.ErrNotFound) {
		return "", false
	}
	if err != nil {
		b.log.Error("look up portal of Matrix event", "room", evt.RoomID.String(), "event", evt.ID.String(), "err", err)
		return "", false
	}
	if !b.firstDelivery(ctx, p.Conference, evt) {
		return "", false
	}
	return p.Conference, true
}

// firstDelivery claims evt's id before anything is done with it. A
// homeserver delivers an event again in a new transaction when it got no
// answer for the first, across restarts of the bridge too; each event takes
// effect once. The claim shares the store of applied transaction ids, under
// a key no transaction id can have (they never contain "/"), and is
// forgotten with them after transactionKeep.
func (b *Bridge) firstDelivery(ctx context.Context, conference string, evt *event.Event) bool {
	key := "event/" + evt.ID.String()
	log := b.log.With("conference", conference, "room", evt.RoomID.String(), "event", evt.ID.String())
	seen, err := b.o.Store.BridgeTransactionApplied(ctx, key)
	if err != nil {
		log.Error("check whether a Matrix event was handled", "err", err)
		return false
	}
	if seen {
		log.Info("Matrix event delivered again: ignored")
		return false
	}
	if err := b.o.Store.MarkBridgeTransaction(ctx, key, time.Now()); err != nil {
		log.Error("claim a Matrix event", "err", err)
		return false
	}
	return true
}
