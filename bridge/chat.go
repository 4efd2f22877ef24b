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

// Chat signal kinds the bridge mirrors (spec/federation.md §5.1).
const (
	KindChat       = "chat"
	KindChatEdit   = "chat.edit"
	KindChatRedact = "chat.redact"
)

// Items of the bridge event table that map chat between the two sides. Both
// are keyed by the Entente signal id, so that an edit or a redaction finds
// the line it refers to from either side.
const (
	// signalItemPrefix: an Entente signal, and the Matrix event a ghost
	// sent for it.
	signalItemPrefix = "signal:"
	// matrixChatItemPrefix: a Matrix user's event, and the signal the node
	// sent for it.
	matrixChatItemPrefix = "matrix-chat:"
)

// maxChatBytes is the longest chat line a conference takes
// (spec/federation.md §5.1).
const maxChatBytes = 4000

const (
	// signalQueueSize bounds the signals waiting to be mirrored while the
	// homeserver is slow; beyond it, chat is dropped rather than held.
	signalQueueSize = 256
	// signalTimeout bounds the mirroring of one signal, retries included.
	signalTimeout = 2 * time.Minute
)

// Signal is a verified conference signal as the node hands it to the bridge.
type Signal struct {
	Conference string
	// ID is the signal's message id; edits and redactions refer to it.
	ID   string
	Kind string
	// User is the author's reference, "local@did:web:…"; for chat bridged
	// from Matrix, the DID of the node that bridged it.
	User string
	// As is the Matrix user a bridged line is written under.
	As string
	// Text is the chat text; Ref the line an edit or a redaction refers to.
	Text, Ref    string
	Organisation string
	At           time.Time
}

// QueueSignal hands sig to the bridge without waiting: signals are mirrored
// one at a time, in the order they were queued, while the bridge runs. When
// the queue is full the signal is dropped and logged.
func (b *Bridge) QueueSignal(sig Signal) {
	select {
	case b.signals <- sig:
	default:
		b.log.Warn("signal not mirrored to Matrix: queue full",
			"conference", sig.Conference, "signal", sig.ID, "kind", sig.Kind)
	}
}

// mirrorSignals drains the signal queue until ctx ends.
func (b *Bridge) mirrorSignals(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-b.signals:
			sctx, cancel := context.WithTimeout(ctx, signalTimeout)
			if err := b.OnSignal(sctx, sig); err != nil {
				b.log.Warn("signal not mirrored to Matrix",
					"conference", sig.Conference, "signal", sig.ID, "kind", sig.Kind, "err", err)
			}
			cancel()
		}
	}
}

// OnSignal mirrors a chat signal into the conference's portal room: the
// author's ghost sends the line, replaces it on chat.edit (m.replace) and
// redacts it on chat.redact. Other kinds, conferences without a portal, and
// lines this bridge itself brought from Matrix are left alone. Mirroring a
// signal again changes nothing.
func (b *Bridge) OnSignal(ctx context.Context, sig Signal) error {
	switch sig.Kind {
	case KindChat, KindChatEdit, KindChatRedact:
	default:
		return nil
	}
	if sig.As != "" && sig.User == b.o.NodeDID {
		// Sent by this bridge for a Matrix user: the room has it already.
		return nil
	}
	defer b.locks.lock(sig.Conference)()
	p, err := b.o.Store.GetBridgePortal(ctx, sig.Conference)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bridge: mirror signal %s: %w", sig.ID, err)
	}
	item := signalItemPrefix + sig.ID
	if _, err := b.o.Store.GetBridgeEvent(ctx, sig.Conference, item); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("bridge: mirror signal %s: %w", sig.ID, err)
	}
	room := id.RoomID(p.RoomID)
	author, err := b.author(ctx, sig)
	if err != nil {
		return fmt.Errorf("bridge: mirror signal %s: %w", sig.ID, err)
	}
	ghost, err := b.ensureGhost(ctx, room, author, nil)
	if err != nil {
		return fmt.Errorf("bridge: mirror signal %s: %w", sig.ID, err)
	}

	var sent *mautrix.RespSendEvent
	switch sig.Kind {
	case KindChat:
		content := &event.MessageEventContent{MsgType: event.MsgText, Body: sig.Text}
		sent, err = ghost.SendMessageEvent(ctx, room, event.EventMessage, content, b.sendOnce(sig))
	case KindChatEdit, KindChatRedact:
		target, ok, terr := b.ghostLine(ctx, sig, room, ghost.UserID)
		if terr != nil || !ok {
			return terr
		}
		if sig.Kind == KindChatEdit {
			content := &event.MessageEventContent{MsgType: event.MsgText, Body: sig.Text}
			content.SetEdit(target)
			sent, err = ghost.SendMessageEvent(ctx, room, event.EventMessage, content, b.sendOnce(sig))
		} else {
			sent, err = ghost.RedactEvent(ctx, room, target, mautrix.ReqRedact{TxnID: "entente-" + sig.ID})
		}
	}
	if err != nil {
		return fmt.Errorf("bridge: mirror %s %s in room %s: %w", sig.Kind, sig.ID, room, err)
	}
	err = b.o.Store.PutBridgeEvent(ctx, store.BridgeEvent{
		Conference: sig.Conference, Item: item, RoomID: room.String(), EventID: sent.EventID.String(), CreatedAt: time.Now(),
	})
	if err != nil {
		return fmt.Errorf("bridge: record mirrored signal %s: %w", sig.ID, err)
	}
	b.log.Debug("signal mirrored to Matrix", "conference", sig.Conference, "signal", sig.ID,
		"kind", sig.Kind, "event", sent.EventID.String())
	return nil
}

// sendOnce makes the homeserver's transaction id the signal's, so that a
// send retried after a lost answer is not posted twice.
func (b *Bridge) sendOnce(sig Signal) mautrix.ReqSendEvent {
	return mautrix.ReqSendEvent{TransactionID: "entente-" + sig.ID}
}

// author is the participant a signal's ghost stands for. A line bridged by
// another node from its own Matrix users gets a ghost per Matrix user of
// that node, named after the Matrix user.
func (b *Bridge) author(ctx context.Context, sig Signal) (Participant, error) {
	if sig.As != "" {
		return Participant{User: sig.As + " via " + sig.User, DisplayName: sig.As, Organisation: sig.Organisation, Node: sig.User}, nil
	}
	conf, err := b.o.Conferences.Conference(ctx, sig.Conference)
	if err != nil {
		return Participant{}, err
	}
	for _, p := range conf.Participants {
		if p.User == sig.User {
			return p, nil
		}
	}
	// The author left the call since: the signal still names them and
	// their organisation.
	return Participant{User: sig.User, Organisation: sig.Organisation}, nil
}

// ghostLine finds the Matrix event of the line an edit or a redaction refers
// to. Only the author's own line is changed (spec §5.1), so a line of
// another ghost, or one that was never mirrored, is left alone.
func (b *Bridge) ghostLine(ctx context.Context, sig Signal, room id.RoomID, ghost id.UserID) (id.EventID, bool, error) {
	e, err := b.o.Store.GetBridgeEvent(ctx, sig.Conference, signalItemPrefix+sig.Ref)
	if errors.Is(err, store.ErrNotFound) {
		b.log.Info("chat line to change was never mirrored to Matrix", "conference", sig.Conference, "signal", sig.ID, "ref", sig.Ref)
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("bridge: mirror signal %s: %w", sig.ID, err)
	}
	target := id.EventID(e.EventID)
	sender, err := b.senderOf(ctx, room, target)
	if err != nil {
		return "", false, fmt.Errorf("bridge: mirror signal %s: %w", sig.ID, err)
	}
	if sender != ghost {
		b.log.Warn("chat line changed by someone other than its author", "conference", sig.Conference,
			"signal", sig.ID, "ref", sig.Ref, "user", sig.User)
		return "", false, nil
	}
	return target, true, nil
}

func (b *Bridge) senderOf(ctx context.Context, room id.RoomID, evt id.EventID) (id.UserID, error) {
	orig, err := b.bot().GetEvent(ctx, room, evt)
	if err != nil {
		return "", fmt.Errorf("read event %s in room %s: %w", evt, room, err)
	}
	return orig.Sender, nil
}

// chatFromMatrix sends a Matrix user's message of a portal room into the
// conference under the user's name: a line, or an edit (m.replace) of one of
// their lines.
func (b *Bridge) chatFromMatrix(ctx context.Context, conference string, evt *event.Event) {
	msg := evt.Content.AsMessage()
	kind, text, ref := KindChat, msg.Body, ""
	if rel := msg.RelatesTo; rel != nil && rel.Type == event.RelReplace {
		if msg.NewContent == nil || msg.NewContent.MsgType != event.MsgText {
			return
		}
		var ok bool
		if ref, ok = b.matrixLine(ctx, conference, evt, rel.EventID); !ok {
			return
		}
		kind, text = KindChatEdit, msg.NewContent.Body
	} else if msg.MsgType != event.MsgText {
		return
	}
	b.sendChat(ctx, conference, evt, kind, text, ref)
}

// redactionFromMatrix sends a Matrix user's redaction of one of their lines
// into the conference.
func (b *Bridge) redactionFromMatrix(ctx context.Context, conference string, evt *event.Event) {
	target := evt.Redacts
	if target == "" {
		// Room version 11 moved redacts into the content.
		target = evt.Content.AsRedaction().Redacts
	}
	if ref, ok := b.matrixLine(ctx, conference, evt, target); ok {
		b.sendChat(ctx, conference, evt, KindChatRedact, "", ref)
	}
}

// matrixLine is the signal id of the line target, when evt's sender wrote it
// in Matrix: a Matrix user changes only their own lines.
func (b *Bridge) matrixLine(ctx context.Context, conference string, evt *event.Event, target id.EventID) (string, bool) {
	log := b.log.With("conference", conference, "room", evt.RoomID.String(), "event", evt.ID.String(), "target", target.String())
	if target == "" {
		return "", false
	}
	e, err := b.o.Store.GetBridgeEventByMatrixID(ctx, target.String())
	if errors.Is(err, store.ErrNotFound) {
		log.Debug("Matrix change of a line that was not bridged")
		return "", false
	}
	if err != nil {
		log.Error("look up bridged line", "err", err)
		return "", false
	}
	ref, ok := strings.CutPrefix(e.Item, matrixChatItemPrefix)
	if !ok || e.Conference != conference {
		log.Warn("Matrix user changed a line that is not theirs", "user", evt.Sender.String())
		return "", false
	}
	sender, err := b.senderOf(ctx, evt.RoomID, target)
	if err != nil {
		log.Error("check author of bridged line", "err", err)
		return "", false
	}
	if sender != evt.Sender {
		log.Warn("Matrix user changed a line that is not theirs", "user", evt.Sender.String())
		return "", false
	}
	return ref, true
}

// sendChat hands a Matrix change to the node and records which signal it
// became. Failures are logged: the homeserver has had its answer already.
func (b *Bridge) sendChat(ctx context.Context, conference string, evt *event.Event, kind, text, ref string) {
	log := b.log.With("conference", conference, "room", evt.RoomID.String(), "event", evt.ID.String(), "kind", kind)
	if b.o.Chat == nil {
		return
	}
	if kind != KindChatRedact && len(text) > maxChatBytes {
		// The conference would refuse it: tell the writer, where they wrote.
		log.Info("Matrix chat over the conference's limit", "user", evt.Sender.String(), "bytes", len(text))
		b.notice(ctx, evt, fmt.Sprintf("Not sent to the conference: a line may have at most %d bytes, and this one has %d.",
			maxChatBytes, len(text)))
		return
	}
	sigID, err := b.o.Chat.SendMatrixChat(ctx, conference, evt.Sender.String(), kind, text, ref)
	if err != nil {
		log.Warn("Matrix chat not sent to the conference", "user", evt.Sender.String(), "err", err)
		return
	}
	err = b.o.Store.PutBridgeEvent(ctx, store.BridgeEvent{
		Conference: conference, Item: matrixChatItemPrefix + sigID, RoomID: evt.RoomID.String(),
		EventID: evt.ID.String(), CreatedAt: time.UnixMilli(evt.Timestamp),
	})
	if err != nil {
		log.Error("record Matrix chat", "signal", sigID, "err", err)
		return
	}
	log.Debug("Matrix chat sent to the conference", "signal", sigID)
}

// notice answers evt in its room with an m.notice from the bot, as a reply.
func (b *Bridge) notice(ctx context.Context, evt *event.Event, text string) {
	content := &event.MessageEventContent{
		MsgType:   event.MsgNotice,
		Body:      text,
		RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: evt.ID}},
		Mentions:  &event.Mentions{UserIDs: []id.UserID{evt.Sender}},
	}
	if _, err := b.bot().SendMessageEvent(ctx, evt.RoomID, event.EventMessage, content); err != nil {
		b.log.Warn("notice not sent to Matrix room", "room", evt.RoomID.String(), "event", evt.ID.String(), "err", err)
	}
}
