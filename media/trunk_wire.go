package media

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Control channel messages (spec/federation.md §10.4), one struct per
// message and one constant per type. On the wire a message is one JSON
// object whose first member is "type", followed by the struct's fields;
// marshalControl writes it and decodeControl reads it back. Receivers ignore
// unknown types, so either side may add messages later. The examples in
// spec/vectors/trunk-control.json are checked against both directions.
//
// Every message but want, rates and relay carries "layer", 0 where it means
// nothing: the first encoder wrote it on all of them, receivers ignore it,
// and the bytes on the wire stay as they were.

// ctlType is the "type" of a control message.
type ctlType string

const (
	ctlState              ctlType = "state"
	ctlParticipantJoined  ctlType = "participant_joined"
	ctlParticipantUpdated ctlType = "participant_updated"
	ctlParticipantLeft    ctlType = "participant_left"
	ctlTrackAdded         ctlType = "track_added"
	ctlTrackRemoved       ctlType = "track_removed"
	ctlTrackMuted         ctlType = "track_muted"
	ctlWant               ctlType = "want"
	ctlRates              ctlType = "rates"
	ctlBind               ctlType = "bind"
	ctlUnbind             ctlType = "unbind"
	ctlGrow               ctlType = "grow"
	ctlRelay              ctlType = "relay"
	ctlRefused            ctlType = "refused"
	ctlData               ctlType = "data"
)

// controlMessage is one of the message structs below.
type controlMessage interface{ ctlType() ctlType }

type (
	// trunkStateMsg is the full state of the sender's side; empty lists are
	// left out.
	trunkStateMsg struct {
		Participants []Participant `json:"participants,omitempty"`
		Tracks       []trunkTrack  `json:"tracks,omitempty"`
		Layer        int           `json:"layer"`
	}
	trunkParticipantJoinedMsg struct {
		Participant *Participant `json:"participant,omitempty"`
		Layer       int          `json:"layer"`
	}
	// trunkParticipantUpdatedMsg is the host's new description of a
	// participant already listed (§10.5).
	trunkParticipantUpdatedMsg trunkParticipantJoinedMsg
	trunkParticipantLeftMsg    struct {
		User  string `json:"user,omitempty"`
		Layer int    `json:"layer"`
	}
	trunkTrackAddedMsg struct {
		Info  *trunkTrack `json:"info,omitempty"`
		Layer int         `json:"layer"`
	}
	trunkTrackRemovedMsg struct {
		Track string `json:"track,omitempty"`
		Layer int    `json:"layer"`
	}
	trunkTrackMutedMsg struct {
		Track string `json:"track,omitempty"`
		Muted bool   `json:"muted,omitempty"`
		Layer int    `json:"layer"`
	}
	// trunkWantMsg is the receiver's demand for a track: the layers it uses,
	// ascending, [] for none.
	trunkWantMsg struct {
		Track  string `json:"track"`
		Layers []int  `json:"layers"`
	}
	// trunkRatesMsg reports the bitrate of each layer of the simulcast tracks
	// offered, 0 for a layer that is not live, and the state of the sender's
	// direction of the trunk: its congestion control's estimate in bits/s,
	// the fraction of its packets lost before recovery, and the layers it
	// holds back because they do not fit (§10.4).
	trunkRatesMsg struct {
		Rates    map[string][]uint64 `json:"rates"`
		Estimate uint64              `json:"estimate,omitempty"`
		Loss     float64             `json:"loss,omitempty"`
		Dropped  map[string][]int    `json:"dropped,omitempty"`
	}
	// trunkBindMsg says the sender's slot now carries layer of track.
	trunkBindMsg struct {
		Track string `json:"track,omitempty"`
		Layer int    `json:"layer"`
		Slot  string `json:"slot,omitempty"`
	}
	trunkUnbindMsg struct {
		Layer int    `json:"layer"`
		Slot  string `json:"slot,omitempty"`
	}
	// trunkGrowMsg asks the member for more slots of Kind, unless it has more
	// than Slots of it already (§10.3).
	trunkGrowMsg struct {
		Layer int    `json:"layer"`
		Kind  string `json:"kind,omitempty"`
		Slots int    `json:"slots,omitempty"`
	}
	// trunkRelayMsg is the member's permission to relay its media (§10.5).
	trunkRelayMsg struct {
		Relay bool `json:"relay"`
	}
	// trunkRefusedMsg answers a want that cannot be served.
	trunkRefusedMsg struct {
		Track  string `json:"track,omitempty"`
		Layer  int    `json:"layer"`
		Reason string `json:"reason,omitempty"`
	}
	// trunkDataMsg is a data message of a participant the sender stands
	// for (data.go); Payload is base64 on the wire.
	trunkDataMsg struct {
		From     string   `json:"from"`
		To       []string `json:"to,omitempty"`
		Reliable bool     `json:"reliable,omitempty"`
		Payload  []byte   `json:"payload"`
	}
	// trunkTrack is a track as the peer needs it: what clients are told,
	// the full picture size for layer choice, and the codec.
	trunkTrack struct {
		TrackInfo
		Width  int        `json:"width"`
		Height int        `json:"height"`
		Codec  trunkCodec `json:"codec"`
	}
	trunkCodec struct {
		MimeType    string `json:"mime_type"`
		ClockRate   uint32 `json:"clock_rate"`
		Channels    uint16 `json:"channels,omitempty"`
		SDPFmtpLine string `json:"sdp_fmtp_line,omitempty"`
	}
)

func (trunkStateMsg) ctlType() ctlType              { return ctlState }
func (trunkParticipantJoinedMsg) ctlType() ctlType  { return ctlParticipantJoined }
func (trunkParticipantUpdatedMsg) ctlType() ctlType { return ctlParticipantUpdated }
func (trunkParticipantLeftMsg) ctlType() ctlType    { return ctlParticipantLeft }
func (trunkTrackAddedMsg) ctlType() ctlType         { return ctlTrackAdded }
func (trunkTrackRemovedMsg) ctlType() ctlType       { return ctlTrackRemoved }
func (trunkTrackMutedMsg) ctlType() ctlType         { return ctlTrackMuted }
func (trunkWantMsg) ctlType() ctlType               { return ctlWant }
func (trunkRatesMsg) ctlType() ctlType              { return ctlRates }
func (trunkBindMsg) ctlType() ctlType               { return ctlBind }
func (trunkUnbindMsg) ctlType() ctlType             { return ctlUnbind }
func (trunkGrowMsg) ctlType() ctlType               { return ctlGrow }
func (trunkRelayMsg) ctlType() ctlType              { return ctlRelay }
func (trunkRefusedMsg) ctlType() ctlType            { return ctlRefused }
func (trunkDataMsg) ctlType() ctlType               { return ctlData }

// maxControlMessage bounds one control message; a full state of a large
// conference fits well within it.
const maxControlMessage = 1 << 20

// marshalControl encodes m as it goes on the wire: {"type":…, fields…}.
func marshalControl(m controlMessage) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	typ, err := json.Marshal(m.ctlType())
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(`{"type":,`)+len(typ)+len(body))
	out = append(out, `{"type":`...)
	out = append(out, typ...)
	if len(body) > 2 {
		out = append(out, ',')
	}
	return append(out, body[1:]...), nil
}

// errControlTooLarge is returned for a message over maxControlMessage.
var errControlTooLarge = errors.New("trunk control message too large")

// decodeControl reads one message. It returns nil, nil for a message of a
// type this node does not know, which the receiver ignores.
func decodeControl(data []byte) (controlMessage, error) {
	if len(data) > maxControlMessage {
		return nil, fmt.Errorf("%w: %d bytes", errControlTooLarge, len(data))
	}
	var head struct {
		Type ctlType `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, err
	}
	switch head.Type {
	case ctlState:
		return decodeAs[trunkStateMsg](head.Type, data)
	case ctlParticipantJoined:
		return decodeAs[trunkParticipantJoinedMsg](head.Type, data)
	case ctlParticipantUpdated:
		return decodeAs[trunkParticipantUpdatedMsg](head.Type, data)
	case ctlParticipantLeft:
		return decodeAs[trunkParticipantLeftMsg](head.Type, data)
	case ctlTrackAdded:
		return decodeAs[trunkTrackAddedMsg](head.Type, data)
	case ctlTrackRemoved:
		return decodeAs[trunkTrackRemovedMsg](head.Type, data)
	case ctlTrackMuted:
		return decodeAs[trunkTrackMutedMsg](head.Type, data)
	case ctlWant:
		return decodeAs[trunkWantMsg](head.Type, data)
	case ctlRates:
		return decodeAs[trunkRatesMsg](head.Type, data)
	case ctlBind:
		return decodeAs[trunkBindMsg](head.Type, data)
	case ctlUnbind:
		return decodeAs[trunkUnbindMsg](head.Type, data)
	case ctlGrow:
		return decodeAs[trunkGrowMsg](head.Type, data)
	case ctlRelay:
		return decodeAs[trunkRelayMsg](head.Type, data)
	case ctlRefused:
		return decodeAs[trunkRefusedMsg](head.Type, data)
	case ctlData:
		return decodeAs[trunkDataMsg](head.Type, data)
	}
	return nil, nil
}

func decodeAs[M controlMessage](typ ctlType, data []byte) (controlMessage, error) {
	var m M
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	return m, nil
}
