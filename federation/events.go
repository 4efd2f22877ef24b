package federation

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/strictjson"
)

// Message and event types (spec §5 and §6.1).
const (
	TypeCreate  = "conference.create"
	TypeInvite  = "conference.invite"
	TypeAccept  = "conference.accept"
	TypeDecline = "conference.decline"
	TypeJoin    = "participant.join"
	TypeLeave   = "participant.leave"
	TypeRemove  = "participant.remove"
	TypeLock    = "conference.lock"
	TypeUnlock  = "conference.unlock"
	TypeEnd     = "conference.end"
	TypeLobby   = "conference.lobby"
	TypeKnock   = "participant.knock"
	TypeAdmit   = "participant.admit"
	TypeDeny    = "participant.deny"

	TypeLog     = "conference.log"
	TypeReceipt = "receipt"
	TypeRoster  = "conference.roster"
	TypeRecords = "conference.records"
)

// memberEventTypes are the events a node other than the host may make and
// send to the host (spec §6.2).
var memberEventTypes = map[string]bool{TypeAccept: true, TypeDecline: true, TypeJoin: true, TypeLeave: true, TypeKnock: true}

// isEventType reports whether typ is a conference event (spec §6.1).
func isEventType(typ string) bool {
	switch typ {
	case TypeCreate, TypeInvite, TypeAccept, TypeDecline, TypeJoin, TypeLeave, TypeRemove, TypeLock, TypeUnlock, TypeEnd,
		TypeLobby, TypeKnock, TypeAdmit, TypeDeny:
		return true
	}
	return false
}

// Contents of the events of spec §6.1.
type (
	CreateContent struct {
		Title      string   `json:"title"`
		Moderators []string `json:"moderators"`
		// Lobby makes remote participants wait to be admitted.
		Lobby bool `json:"lobby,omitempty"`
	}
	LobbyContent struct {
		On bool `json:"on"`
	}
	InviteContent struct {
		Node  string   `json:"node"`
		Users []string `json:"users"`
	}
	JoinContent struct {
		User         string `json:"user"`
		DisplayName  string `json:"display_name"`
		Organisation string `json:"organisation"`
		// Unit is the user's organisational unit as the home node's
		// OpenID provider gives it (spec §6.1); absent when unknown.
		Unit string `json:"unit,omitempty"`
		// Guest marks a guest the host let in through a guest link
		// (spec §6.1); only the host sends it, absent otherwise.
		Guest bool `json:"guest,omitempty"`
	}
	UserContent struct {
		User string `json:"user"`
	}
	EmptyContent struct{}
)

// LinkPayload chains a record into a conference's log (spec §6.3).
type LinkPayload struct {
	Conference string `json:"conference"`
	Seq        int64  `json:"seq"`
	Prev       string `json:"prev"`
	Event      string `json:"event"`
	Host       string `json:"host"`
	Created    int64  `json:"created"`
}

// RecordJSON is a record as it travels (spec §6.3).
type RecordJSON struct {
	Event Envelope `json:"event"`
	Link  Envelope `json:"link"`
}

// LogContent is the content of conference.log and conference.records.
type LogContent struct {
	Records []RecordJSON `json:"records"`
}

// ReceiptContent is the content of a receipt (spec §5).
type ReceiptContent struct {
	Message string `json:"message"`
	Status  string `json:"status"`
	Seq     int64  `json:"seq,omitempty"`
}

// maxRecordsPerMessage keeps a conference.log under the strict decoder's
// array limit (spec §4.3).
const maxRecordsPerMessage = 100

// decodeContent decodes a content object strictly into v. A field without
// omitempty is required: senders leave out only empty optional fields
// (spec §4.4).
func decodeContent(raw json.RawMessage, v any) error {
	lim := strictjson.Limits{}
	if _, ok := v.(*RelayContent); ok {
		lim.MaxString = maxRelayedPayload // spec §4.3
	}
	if err := strictjson.Decode(raw, v, lim); err != nil {
		return httpapi.BadRequest("content: %v", err)
	}
	if err := strictjson.RequireFields(raw, v); err != nil {
		return httpapi.BadRequest("content: %v", err)
	}
	return nil
}

func marshalContent(v any) (json.RawMessage, error) {
	if v == nil {
		v = EmptyContent{}
	}
	b, err := json.Marshal(v)
	return b, err
}

// decodeLink decodes a link payload strictly and checks its fields.
func decodeLink(b []byte) (LinkPayload, error) {
	var l LinkPayload
	if err := strictjson.Decode(b, &l, strictjson.Limits{}); err != nil {
		return l, httpapi.BadRequest("link: %v", err)
	}
	// Every field is required (spec §6.3): a missing created is not 0.
	if err := strictjson.RequireFields(b, &l); err != nil {
		return l, httpapi.BadRequest("link: %v", err)
	}
	switch {
	case !validConferenceID(l.Conference):
		return l, httpapi.BadRequest("link: conference %q is not a conference id", l.Conference)
	case l.Seq < 1:
		return l, httpapi.BadRequest("link: seq %d is not positive", l.Seq)
	case (l.Seq == 1) != (l.Prev == ""):
		return l, httpapi.BadRequest("link: prev must be empty exactly for seq 1")
	case l.Prev != "" && !isHexHash(l.Prev), !isHexHash(l.Event):
		return l, httpapi.BadRequest("link: hashes must be 64 lower-case hex digits")
	case !strings.HasPrefix(l.Host, "did:"):
		return l, httpapi.BadRequest("link: host %q is not a DID", l.Host)
	}
	return l, nil
}

func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validConferenceID follows spec §4.2: "c-" and 16 to 32 of [a-z0-9].
func validConferenceID(s string) bool {
	if !strings.HasPrefix(s, "c-") || len(s) < 18 || len(s) > 34 {
		return false
	}
	for _, c := range s[2:] {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validText bounds the free text of events (titles, names).
func validText(s string, max int) bool {
	return s != "" && len(s) <= max && utf8.ValidString(s) && strings.TrimSpace(s) == s
}
