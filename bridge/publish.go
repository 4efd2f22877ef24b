package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/store"
)

// How Matrix users who were not invited find a portal room (README,
// "Bridging Matrix"): by an address the room is published under, or through
// a space they are in. Restricted join rules ("members of this space may
// join") are not used: Dendrite refuses such joins, so the space's members
// are invited instead.

// ErrBadAlias is a room alias the bridge cannot publish.
var ErrBadAlias = errors.New("not a room alias of the bridge's homeserver")

// ErrBadSpace is a space id that is not a room id.
var ErrBadSpace = errors.New("not a Matrix room id")

// Publish makes the conference's portal room joinable by alias: the alias
// (on the bridge's homeserver) points to the room, it is the room's
// canonical alias, and the room's join rule is public, so that any Matrix
// user who knows the address joins it (and then the call, as a guest).
// Publishing the same alias again changes nothing; an alias that already
// names another room is a store.ErrConflict.
func (b *Bridge) Publish(ctx context.Context, conference, alias string) error {
	if err := b.CheckAlias(alias); err != nil {
		return err
	}
	ra := id.RoomAlias(alias)
	defer b.locks.lock(conference)()
	p, err := b.o.Store.GetBridgePortal(ctx, conference)
	if err != nil {
		return fmt.Errorf("bridge: publish the room of %s: %w", conference, err)
	}
	room := id.RoomID(p.RoomID)
	bot := b.bot()
	if err := b.checkBotLevels(ctx, room, event.StateJoinRules, event.StateCanonicalAlias); err != nil {
		return err
	}
	resolved, err := bot.ResolveAlias(ctx, ra)
	switch {
	case errors.Is(err, mautrix.MNotFound):
		if _, err := bot.CreateAlias(ctx, ra, room); err != nil {
			return fmt.Errorf("bridge: create alias %s for room %s: %w", alias, room, err)
		}
	case err != nil:
		return fmt.Errorf("bridge: resolve alias %s: %w", alias, err)
	case resolved.RoomID != room:
		return fmt.Errorf("bridge: alias %s already names room %s: %w", alias, resolved.RoomID, store.ErrConflict)
	}
	var rules event.JoinRulesEventContent
	if err := bot.StateEvent(ctx, room, event.StateJoinRules, "", &rules); err != nil && !errors.Is(err, mautrix.MNotFound) {
		return fmt.Errorf("bridge: read join rule of room %s: %w", room, err)
	}
	if rules.JoinRule != event.JoinRulePublic {
		if _, err := bot.SendStateEvent(ctx, room, event.StateJoinRules, "", &event.JoinRulesEventContent{JoinRule: event.JoinRulePublic}); err != nil {
			return fmt.Errorf("bridge: make room %s public: %w", room, err)
		}
	}
	var canonical event.CanonicalAliasEventContent
	if err := bot.StateEvent(ctx, room, event.StateCanonicalAlias, "", &canonical); err != nil && !errors.Is(err, mautrix.MNotFound) {
		return fmt.Errorf("bridge: read canonical alias of room %s: %w", room, err)
	}
	if canonical.Alias != ra {
		canonical.Alias = ra
		if _, err := bot.SendStateEvent(ctx, room, event.StateCanonicalAlias, "", &canonical); err != nil {
			return fmt.Errorf("bridge: set canonical alias of room %s: %w", room, err)
		}
	}
	b.log.Info("portal room published", "conference", conference, "room", room.String(), "alias", alias)
	return nil
}

// CheckAlias returns ErrBadAlias unless alias is "#name:server" on the
// bridge's homeserver, the only server where the bot can create it.
func (b *Bridge) CheckAlias(alias string) error {
	localpart, server, ok := strings.Cut(strings.TrimPrefix(alias, "#"), ":")
	if !strings.HasPrefix(alias, "#") || !ok || localpart == "" || server != b.o.HomeserverDomain {
		return fmt.Errorf("%q: %w (\"#name:%s\")", alias, ErrBadAlias, b.o.HomeserverDomain)
	}
	return nil
}

// CheckSpace returns ErrBadSpace unless space is a room id, "!id:server".
func CheckSpace(space string) error {
	if !strings.HasPrefix(space, "!") || !strings.Contains(space, ":") {
		return fmt.Errorf("space %q: %w (\"!id:server\")", space, ErrBadSpace)
	}
	return nil
}

// AddToSpace puts the conference's portal room in a space (m.space.child in
// the space, m.space.parent in the room) and invites the space's joined
// members, as they are now: who joins the space later is not invited. The
// bot must be in the space, or invited to it, with the power to add rooms.
// It returns the users it invited.
func (b *Bridge) AddToSpace(ctx context.Context, conference, space string) ([]string, error) {
	if err := CheckSpace(space); err != nil {
		return nil, err
	}
	sp := id.RoomID(space)
	members, err := b.linkSpace(ctx, conference, sp)
	if err != nil {
		return nil, err
	}
	var users []string
	for _, u := range members {
		if u != b.botUser() && !b.isGhost(u) {
			users = append(users, u.String())
		}
	}
	return b.Invite(ctx, conference, users)
}

// linkSpace adds the room to the space both ways and returns the space's
// joined members.
func (b *Bridge) linkSpace(ctx context.Context, conference string, space id.RoomID) ([]id.UserID, error) {
	defer b.locks.lock(conference)()
	p, err := b.o.Store.GetBridgePortal(ctx, conference)
	if err != nil {
		return nil, fmt.Errorf("bridge: add the room of %s to a space: %w", conference, err)
	}
	room := id.RoomID(p.RoomID)
	bot := b.bot()
	if err := bot.EnsureJoined(ctx, space); err != nil {
		return nil, fmt.Errorf("bridge: bot cannot join space %s (invite it first): %w", space, err)
	}
	if err := b.checkBotLevels(ctx, space, event.StateSpaceChild); err != nil {
		return nil, err
	}
	if err := b.checkBotLevels(ctx, room, event.StateSpaceParent); err != nil {
		return nil, err
	}
	via := []string{b.o.HomeserverDomain}
	if _, err := bot.SendStateEvent(ctx, space, event.StateSpaceChild, room.String(), &event.SpaceChildEventContent{Via: via}); err != nil {
		return nil, fmt.Errorf("bridge: add room %s to space %s: %w", room, space, err)
	}
	if _, err := bot.SendStateEvent(ctx, room, event.StateSpaceParent, space.String(), &event.SpaceParentEventContent{Via: via, Canonical: true}); err != nil {
		return nil, fmt.Errorf("bridge: name space %s in room %s: %w", space, room, err)
	}
	joined, err := bot.JoinedMembers(ctx, space)
	if err != nil {
		return nil, fmt.Errorf("bridge: members of space %s: %w", space, err)
	}
	users := make([]id.UserID, 0, len(joined.Joined))
	for u := range joined.Joined {
		users = append(users, u)
	}
	b.log.Info("portal room added to space", "conference", conference, "room", room.String(), "space", space.String(), "members", len(users))
	return users, nil
}

// checkBotLevels checks that the bot may send each of these state events
// in room, and names each it may not (PowerLevelsError).
func (b *Bridge) checkBotLevels(ctx context.Context, room id.RoomID, types ...event.Type) error {
	pl, err := b.powerLevels(ctx, room)
	if err != nil {
		return err
	}
	level := pl.GetUserLevel(b.botUser())
	var missing []string
	for _, typ := range types {
		if need := pl.GetEventLevel(typ); level < need {
			missing = append(missing, fmt.Sprintf("the bot %s needs power level %d for %s events, and has %d", b.botUser(), need, typ.Type, level))
		}
	}
	if len(missing) > 0 {
		return &PowerLevelsError{Room: room.String(), Missing: missing}
	}
	return nil
}
