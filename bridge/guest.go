package bridge

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/store"
)

// A Matrix user signed in with OpenID is a guest (spec/client-api.md §6):
// they reach only the conferences whose portal room they are joined to. The
// homeserver is the authority on that membership, so the bridge asks it
// each time rather than trusting what it saw pushed.

// ErrNotInPortal is a Matrix user who is not joined to the portal room of
// the conference they asked for.
var ErrNotInPortal = errors.New("not joined to the conference's Matrix room")

// GuestConferences returns the conferences whose portal room matrixUser is
// joined to now, as the homeserver says, the most recently linked first.
func (b *Bridge) GuestConferences(ctx context.Context, matrixUser string) ([]string, error) {
	portals, err := b.o.Store.ListBridgePortals(ctx)
	if err != nil {
		return nil, fmt.Errorf("bridge: portals of %s: %w", matrixUser, err)
	}
	var out []string
	for _, p := range portals {
		joined, err := b.joined(ctx, id.RoomID(p.RoomID), id.UserID(matrixUser))
		if err != nil {
			return nil, fmt.Errorf("bridge: portals of %s: %w", matrixUser, err)
		}
		if joined {
			out = append(out, p.Conference)
		}
	}
	return out, nil
}

// CheckGuest returns nil when matrixUser is joined to the conference's
// portal room now, ErrNotInPortal when they are not or the conference has
// no portal, and another error when the homeserver could not be asked.
func (b *Bridge) CheckGuest(ctx context.Context, conference, matrixUser string) error {
	p, err := b.o.Store.GetBridgePortal(ctx, conference)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotInPortal
	}
	if err != nil {
		return fmt.Errorf("bridge: portal of %s: %w", conference, err)
	}
	joined, err := b.joined(ctx, id.RoomID(p.RoomID), id.UserID(matrixUser))
	if err != nil {
		return fmt.Errorf("bridge: %s in the room of %s: %w", matrixUser, conference, err)
	}
	if !joined {
		return ErrNotInPortal
	}
	return nil
}

// joined asks the homeserver, as the bot, for user's membership of room.
func (b *Bridge) joined(ctx context.Context, room id.RoomID, user id.UserID) (bool, error) {
	var member event.MemberEventContent
	err := b.bot().StateEvent(ctx, room, event.StateMember, user.String(), &member)
	if errors.Is(err, mautrix.MNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("membership of %s in room %s: %w", user, room, err)
	}
	return member.Membership == event.MembershipJoin, nil
}
