package livekit

import (
	"context"
	"encoding/json"
	"time"

	lk "github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// Chat crosses between LiveKit and native clients (spec/client-api.md §8.6):
// a LiveKit chat line meant for everyone becomes a native chat signal, which
// reaches native clients, the Matrix room and every node of the conference;
// native chat reaches LiveKit participants as the two forms LiveKit UIs
// read, a ChatMessage packet and a user packet on LegacyChatTopic, with the
// same id.

// LegacyChatTopic is the topic of the user packets LiveKit's UI components
// carry chat on, as the JSON legacyChat.
const LegacyChatTopic = "lk-chat-topic"

// Chat kinds, as native signals name them.
const (
	ChatLineNew    = "chat"
	ChatLineEdit   = "chat.edit"
	ChatLineRedact = "chat.redact"
)

// ChatLine is a chat signal of a conference: a new line, an edit of line
// Ref or its redaction.
type ChatLine struct {
	ID   string
	User string
	Kind string
	Text string
	Ref  string
	At   time.Time
}

// legacyChat is the JSON of a LegacyChatTopic packet.
type legacyChat struct {
	ID            string `json:"id"`
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	EditTimestamp int64  `json:"editTimestamp,omitempty"`
	Deleted       bool   `json:"deleted,omitempty"`
}

// maxChatIDs bounds the LiveKit message ids a participant's chat lines are
// remembered under, for its edits and deletions.
const maxChatIDs = 1024

// chatFrom sends a chat packet as native chat and says whether it did; a
// packet that is not chat, or chat the node cannot carry, travels as data.
func (p *participant) chatFrom(pkt *lk.DataPacket) bool {
	if p.srv.opts.Chat == nil {
		return false
	}
	var c legacyChat
	switch {
	case pkt.GetChatMessage() != nil:
		m := pkt.GetChatMessage()
		c = legacyChat{ID: m.GetId(), Message: m.GetMessage(), EditTimestamp: m.GetEditTimestamp(), Deleted: m.GetDeleted()}
	case pkt.GetUser().GetTopic() == LegacyChatTopic:
		if json.Unmarshal(pkt.GetUser().GetPayload(), &c) != nil || c.ID == "" {
			return false
		}
	default:
		return false
	}
	line := ChatLine{User: p.me.User, Kind: ChatLineNew, Text: c.Message}
	if c.Deleted || c.EditTimestamp != 0 {
		p.mu.Lock()
		ref, ok := p.chatIDs[c.ID]
		p.mu.Unlock()
		if !ok {
			return false
		}
		line.Kind, line.Ref = ChatLineEdit, ref
		if c.Deleted {
			line.Kind, line.Text = ChatLineRedact, ""
		}
	}
	p.later(func() {
		ctx, cancel := context.WithTimeout(context.Background(), chatTimeout)
		defer cancel()
		id, err := p.srv.opts.Chat(ctx, p.adm.grant.Conference, line)
		if err != nil {
			p.log.Info("chat line not sent", "err", err)
			p.refuseRequest("chat line not sent: " + err.Error())
			return
		}
		if line.Kind == ChatLineNew {
			p.mu.Lock()
			if len(p.chatIDs) >= maxChatIDs {
				clear(p.chatIDs)
			}
			p.chatIDs[c.ID] = id
			p.mu.Unlock()
		}
	})
	return true
}

// chatTimeout bounds sending one chat line.
const chatTimeout = 10 * time.Second

// DeliverChat hands a chat signal of conference to its LiveKit participants
// on this node, except its author's own, who shows the line already.
func (s *Server) DeliverChat(conference string, line ChatLine) {
	ps := s.rooms.members(conference)
	if len(ps) == 0 {
		return
	}
	msg := &lk.ChatMessage{Id: line.ID, Timestamp: line.At.UnixMilli(), Message: line.Text}
	legacy := legacyChat{ID: line.ID, Timestamp: msg.Timestamp, Message: line.Text}
	switch line.Kind {
	case ChatLineNew:
	case ChatLineEdit:
		edited := line.At.UnixMilli()
		msg.Id, msg.EditTimestamp = line.Ref, &edited
		legacy.ID, legacy.EditTimestamp = line.Ref, edited
	case ChatLineRedact:
		msg.Id, msg.Deleted, msg.Message = line.Ref, true, ""
		legacy.ID, legacy.Deleted, legacy.Message = line.Ref, true, ""
	default:
		return
	}
	payload, _ := json.Marshal(legacy)
	typed, err1 := proto.Marshal(&lk.DataPacket{ParticipantIdentity: line.User, Value: &lk.DataPacket_ChatMessage{ChatMessage: msg}})
	topic := LegacyChatTopic
	user, err2 := proto.Marshal(&lk.DataPacket{ParticipantIdentity: line.User, Value: &lk.DataPacket_User{User: &lk.UserPacket{
		ParticipantSid: line.User, ParticipantIdentity: line.User, Payload: payload, Topic: &topic,
	}}})
	if err1 != nil || err2 != nil {
		return
	}
	for _, p := range ps {
		if p.me.User == line.User {
			continue
		}
		p.sendData(true, typed)
		p.sendData(true, user)
	}
}
