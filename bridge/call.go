package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/store"
)

const (
	// ghostDevice is the device every ghost is in the call with; ghosts
	// have no real devices, and one fixed id keeps state keys stable.
	ghostDevice = "ENTENTE"
	// callMembershipLifetime is the MatrixRTC "expires" of a ghost's
	// membership, counted from created_ts. Entente tells the bridge when
	// someone leaves, and delayed leave events are not used (Dendrite sends
	// them at once), so a membership is renewed while its participant stays:
	// Sync rewrites one with less than callMembershipRenewBefore left, and
	// the bridge syncs every portal each callMembershipRenewEvery.
	callMembershipLifetime    = 4 * time.Hour
	callMembershipRenewBefore = time.Hour
	callMembershipRenewEvery  = 10 * time.Minute
	// joinLinkItem is the bridge event item of the posted join link.
	joinLinkItem = "join-link"
)

// Sync brings the conference's portal in line with the conference: each
// participant from Entente has a ghost in the room that is in the call, those
// who left or whose conference ended are out of it, and the start of a call
// is announced. It reads the room's state first and sends only what differs,
// so running it again changes nothing. A conference without a portal is
// not bridged and Sync does nothing.
func (b *Bridge) Sync(ctx context.Context, conference string) error {
	defer b.locks.lock(conference)()
	p, err := b.o.Store.GetBridgePortal(ctx, conference)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bridge: sync %s: %w", conference, err)
	}
	conf, err := b.o.Conferences.Conference(ctx, conference)
	if err != nil {
		return fmt.Errorf("bridge: sync %s: %w", conference, err)
	}
	room := id.RoomID(p.RoomID)
	bot := b.bot()
	if err := bot.EnsureRegistered(ctx); err != nil {
		return fmt.Errorf("bridge: sync %s: register bot: %w", conference, err)
	}
	state, err := bot.State(ctx, room)
	if err != nil {
		return fmt.Errorf("bridge: sync %s: read state of room %s: %w", conference, room, err)
	}
	calls := stateOf(state, callMemberType.Type)
	// Only the ghosts' memberships are the bridge's: a Matrix user in the
	// call through the widget writes their own (spec/client-api.md, "The
	// client as a Matrix widget"), and Sync never touches it.
	wasActive := b.activeGhostMemberships(calls) > 0

	want := make(map[string]Participant) // by call membership state key
	if !conf.Ended {
		for _, part := range conf.Participants {
			if part.MatrixUser != "" {
				continue
			}
			want[callStateKey(b.ghostUser(part.User), ghostDevice)] = part
		}
	}

	for key, part := range want {
		if isActive(calls[key]) && !b.expiresSoon(calls[key]) {
			continue
		}
		ghost, err := b.ensureGhost(ctx, room, part, state)
		if err != nil {
			return fmt.Errorf("bridge: sync %s: %w", conference, err)
		}
		content := b.callMembership(ghostDevice, room)
		if _, err := ghost.SendStateEvent(ctx, room, callMemberType, key, content); err != nil {
			return fmt.Errorf("bridge: sync %s: %s joins the call: %w", conference, ghost.UserID, err)
		}
		if isActive(calls[key]) {
			b.log.Debug("ghost's call membership renewed", "conference", conference, "user", part.User)
		} else {
			b.log.Info("ghost joined call", "conference", conference, "user", part.User, "ghost", ghost.UserID.String())
		}
	}
	for key, evt := range calls {
		ghostID, ok := b.ghostOfStateKey(key)
		if !ok || !isActive(evt) {
			continue
		}
		if _, wanted := want[key]; wanted {
			continue
		}
		ghost := b.intent(ghostID)
		if _, err := ghost.SendStateEvent(ctx, room, callMemberType, key, struct{}{}); err != nil {
			return fmt.Errorf("bridge: sync %s: %s leaves the call: %w", conference, ghostID, err)
		}
		b.log.Info("ghost left call", "conference", conference, "ghost", ghostID.String())
	}

	if !wasActive && len(want) > 0 {
		if err := b.announceCall(ctx, conf, room, state); err != nil {
			return fmt.Errorf("bridge: sync %s: %w", conference, err)
		}
	}
	if conf.Ended {
		if err := b.removeWidget(ctx, conf, room, state); err != nil {
			return fmt.Errorf("bridge: sync %s: %w", conference, err)
		}
	}
	return nil
}

// ensureGhost registers the participant's ghost, gives it the display name
// "Name (Organisation)" and puts it in the room. state is the room's state
// as just read, or nil to rely on what mautrix remembers of the room.
func (b *Bridge) ensureGhost(ctx context.Context, room id.RoomID, part Participant, state mautrix.RoomStateMap) (*appservice.IntentAPI, error) {
	user := b.ghostUser(part.User)
	ghost := b.intent(user)
	if ghost == nil {
		return nil, fmt.Errorf("ghost %s of %s is not on %s", user, part.User, b.o.HomeserverDomain)
	}
	if err := ghost.EnsureRegistered(ctx); err != nil {
		return nil, fmt.Errorf("register ghost %s of %s: %w", user, part.User, err)
	}
	name := ghostDisplayName(part)
	stored, err := b.o.Store.GetBridgeGhost(ctx, part.User)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err != nil || stored.DisplayName != name || stored.MatrixUser != user.String() {
		if err := ghost.SetDisplayName(ctx, name); err != nil {
			return nil, fmt.Errorf("set display name of ghost %s: %w", user, err)
		}
		err := b.o.Store.PutBridgeGhost(ctx, store.BridgeGhost{
			UserRef: part.User, MatrixUser: user.String(), DisplayName: name, UpdatedAt: time.Now(),
		})
		if err != nil {
			return nil, err
		}
	}
	// The bot invites the ghost if the room needs that.
	join := appservice.EnsureJoinedParams{BotOverride: b.bot().Client}
	switch {
	case state == nil:
		// No state read: mautrix's memory of the room decides.
	case membership(state, user) == event.MembershipJoin:
		return ghost, nil
	default:
		// The state just read says the ghost is out, whatever mautrix's
		// cache remembers.
		join.IgnoreCache = true
	}
	if err := ghost.EnsureJoined(ctx, room, join); err != nil {
		return nil, fmt.Errorf("ghost %s joins room %s: %w", user, room, err)
	}
	return ghost, nil
}

// announceCall tells the room a call started: the join link (once per
// conference), the widget that opens it, and a ring.
func (b *Bridge) announceCall(ctx context.Context, conf Conference, room id.RoomID, state mautrix.RoomStateMap) error {
	bot := b.bot()
	if conf.JoinURL != "" {
		_, err := b.o.Store.GetBridgeEvent(ctx, conf.ID, joinLinkItem)
		if errors.Is(err, store.ErrNotFound) {
			text := fmt.Sprintf("%s has started. Join it: %s", conf.Title, conf.JoinURL)
			resp, err := bot.SendText(ctx, room, text)
			if err != nil {
				return fmt.Errorf("post join link: %w", err)
			}
			err = b.o.Store.PutBridgeEvent(ctx, store.BridgeEvent{
				Conference: conf.ID, Item: joinLinkItem, RoomID: room.String(), EventID: resp.EventID.String(), CreatedAt: time.Now(),
			})
			if err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		widget := b.widget(conf)
		current := stateOf(state, widgetType.Type)[widgetStateKey(conf)]
		if current == nil || current.Content.Raw["url"] != widget["url"] {
			if _, err := bot.SendStateEvent(ctx, room, widgetType, widgetStateKey(conf), widget); err != nil {
				return fmt.Errorf("add call widget: %w", err)
			}
		}
	}
	ring := map[string]any{
		"notification_type": "ring",
		"application":       "m.call",
		"call_id":           "",
		"m.mentions":        map[string]any{"room": true, "user_ids": []string{}},
	}
	if _, err := bot.SendMessageEvent(ctx, room, rtcNotificationType, ring); err != nil {
		return fmt.Errorf("ring the room: %w", err)
	}
	b.log.Info("call announced", "conference", conf.ID, "room", room.String())
	return nil
}

func (b *Bridge) removeWidget(ctx context.Context, conf Conference, room id.RoomID, state mautrix.RoomStateMap) error {
	current := stateOf(state, widgetType.Type)[widgetStateKey(conf)]
	if current == nil || len(current.Content.Raw) == 0 {
		return nil
	}
	if _, err := b.bot().SendStateEvent(ctx, room, widgetType, widgetStateKey(conf), struct{}{}); err != nil {
		return fmt.Errorf("remove call widget: %w", err)
	}
	return nil
}

func (b *Bridge) widget(conf Conference) map[string]any {
	return map[string]any{
		"id":            widgetStateKey(conf),
		"type":          "m.custom",
		"name":          conf.Title,
		"url":           WidgetURL(conf.JoinURL),
		"creatorUserId": b.botUser().String(),
		"data":          map[string]any{"title": conf.Title},
	}
}

// WidgetURL is the room widget's URL for a conference's join URL. The
// Matrix client fills in its template variables: the widget id, which the
// client needs to speak the widget API (an OpenID token for the sign-in),
// and the user, their device and the room, which name the user's own call
// membership (spec/client-api.md, "The client as a Matrix widget").
func WidgetURL(joinURL string) string {
	return joinURL + "?widgetId=$matrix_widget_id&userId=$matrix_user_id" +
		"&deviceId=$org.matrix.msc3819.matrix_device_id&roomId=$matrix_room_id"
}

func widgetStateKey(conf Conference) string { return "entente-" + conf.ID }

// callMembership is the content of a MatrixRTC membership in the legacy
// per-device form Element Call reads (MSC3401, MSC4143). With the node's
// focus on, foci_preferred names it, with the room as the LiveKit alias, so
// that Element Call (whose focus_selection "oldest_membership" takes the
// focus of the oldest membership) gets its credentials there
// (spec/client-api.md §8.8). With it off, foci_preferred is empty: a focus
// Element Call cannot use is worse than none.
func (b *Bridge) callMembership(device string, room id.RoomID) map[string]any {
	foci := []any{}
	if b.o.FocusURL != "" {
		foci = append(foci, map[string]any{
			"type": "livekit", "livekit_service_url": b.o.FocusURL, "livekit_alias": room.String(),
		})
	}
	return map[string]any{
		"application":    "m.call",
		"call_id":        "",
		"scope":          "m.room",
		"device_id":      device,
		"expires":        b.lifetime.Milliseconds(),
		"focus_active":   map[string]any{"type": "livekit", "focus_selection": "oldest_membership"},
		"foci_preferred": foci,
		"created_ts":     time.Now().UnixMilli(),
	}
}

// expiresSoon reports whether a membership ends within renewBefore, by its
// own created_ts and expires (a membership without them is renewed).
func (b *Bridge) expiresSoon(evt *event.Event) bool {
	created, _ := evt.Content.Raw["created_ts"].(float64)
	expires, _ := evt.Content.Raw["expires"].(float64)
	end := time.UnixMilli(int64(created)).Add(time.Duration(expires) * time.Millisecond)
	return time.Until(end) < b.renewBefore
}

// renewMemberships syncs every portal each renewEvery until ctx ends, so
// that the memberships of ghosts still in a call never expire.
func (b *Bridge) renewMemberships(ctx context.Context) {
	t := time.NewTicker(b.renewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		portals, err := b.o.Store.ListBridgePortals(ctx)
		if err != nil {
			b.log.Warn("renewing call memberships: portals not listed", "err", err)
			continue
		}
		for _, p := range portals {
			if err := b.Sync(ctx, p.Conference); err != nil && ctx.Err() == nil {
				b.log.Warn("renewing call memberships failed", "conference", p.Conference, "err", err)
			}
		}
	}
}

// ghostUser is the Matrix user standing for an Entente user reference: the
// ghost prefix and a hash of the reference, stable across restarts and
// lowercase as Matrix localparts must be.
func (b *Bridge) ghostUser(userRef string) id.UserID {
	sum := sha256.Sum256([]byte(userRef))
	return id.NewUserID(b.o.GhostPrefix+hex.EncodeToString(sum[:10]), b.o.HomeserverDomain)
}

func (b *Bridge) isGhost(user id.UserID) bool {
	localpart, server, err := user.Parse()
	return err == nil && server == b.o.HomeserverDomain && strings.HasPrefix(localpart, b.o.GhostPrefix)
}

// ghostOfStateKey returns the ghost whose call membership key is key.
func (b *Bridge) ghostOfStateKey(key string) (id.UserID, bool) {
	rest, ok := strings.CutPrefix(key, "_")
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(rest, "_"+ghostDevice+"_m.call")
	if !ok {
		return "", false
	}
	user := id.UserID(rest)
	return user, b.isGhost(user)
}

// callStateKey is the legacy MatrixRTC state key "_{user}_{device}_m.call";
// the leading "_" avoids the rule that a key starting with "@" must be the
// sender itself.
func callStateKey(user id.UserID, device string) string {
	return "_" + user.String() + "_" + device + "_m.call"
}

func ghostDisplayName(p Participant) string {
	name := p.DisplayName
	if name == "" {
		name, _, _ = strings.Cut(p.User, "@")
	}
	if p.Organisation == "" {
		return name
	}
	return name + " (" + p.Organisation + ")"
}

// stateOf returns the room's state events of one type by state key.
func stateOf(state mautrix.RoomStateMap, typ string) map[string]*event.Event {
	for t, evts := range state {
		if t.Type == typ {
			return evts
		}
	}
	return nil
}

func isActive(evt *event.Event) bool { return evt != nil && len(evt.Content.Raw) > 0 }

// activeGhostMemberships counts the ghosts' memberships in calls.
func (b *Bridge) activeGhostMemberships(calls map[string]*event.Event) int {
	n := 0
	for key, evt := range calls {
		if _, ghost := b.ghostOfStateKey(key); ghost && isActive(evt) {
			n++
		}
	}
	return n
}

func membership(state mautrix.RoomStateMap, user id.UserID) event.Membership {
	evt := stateOf(state, event.StateMember.Type)[user.String()]
	if evt == nil {
		return ""
	}
	m, _ := evt.Content.Raw["membership"].(string)
	return event.Membership(m)
}
