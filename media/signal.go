package media

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
)

// Limits of the signalling WebSocket (spec/client-api.md §5.1).
const (
	maxFrameSize = 64 << 10
	// hardFrameLimit closes the connection: a client sending this much in
	// one frame is not a client.
	hardFrameLimit = 1 << 20
	pingInterval   = 15 * time.Second
	writeTimeout   = 5 * time.Second
	outboxSize     = 256
)

// Error codes of the `error` message (spec/client-api.md §5.2).
const (
	codeBadFrame        = "bad_frame"
	codeTooLarge        = "too_large"
	codeUnknownType     = "unknown_type"
	codeNotJoined       = "not_joined"
	codeAlreadyJoined   = "already_joined"
	codeBadRequest      = "bad_request"
	codeBadSDP          = "bad_sdp"
	codeBadCandidate    = "bad_candidate"
	codeUnknownTrack    = "unknown_track"
	codeOwnTrack        = "own_track"
	codeUnexpectedReply = "unexpected_answer"
	codeInternal        = "internal"
)

// inbound is every client → server message; Type says which fields count.
type inbound struct {
	Type      string                   `json:"type"`
	SDP       string                   `json:"sdp"`
	Tracks    []publishedTrack         `json:"tracks"`
	PC        string                   `json:"pc"`
	Candidate *webrtc.ICECandidateInit `json:"candidate"`
	Track     string                   `json:"track"`
	MaxWidth  int                      `json:"max_width"`
	MaxHeight int                      `json:"max_height"`
	Muted     bool                     `json:"muted"`
}

// publishedTrack is one entry of `publish_offer.tracks`.
type publishedTrack struct {
	Mid       string `json:"mid"`
	Kind      string `json:"kind"`
	Source    string `json:"source"`
	Simulcast bool   `json:"simulcast"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	// id, when set, is the track ID to give the up-track: a Session's
	// protocol may have to name a track before its media arrives.
	id string
}

func (p publishedTrack) validate() error {
	switch {
	case p.Mid == "":
		return errors.New("track without mid")
	case p.Kind != "audio" && p.Kind != "video":
		return errors.New("kind must be audio or video")
	case p.Kind == "audio" && p.Source != "microphone":
		return errors.New("an audio track's source must be microphone")
	case p.Kind == "video" && p.Source != "camera" && p.Source != "screen":
		return errors.New("a video track's source must be camera or screen")
	case p.Kind == "audio" && p.Simulcast:
		return errors.New("audio cannot be simulcast")
	case p.Width < 0 || p.Height < 0 || p.Width > 16384 || p.Height > 16384:
		return errors.New("width and height must be within 0..16384")
	}
	return nil
}

// Server → client messages.
type (
	joinedMsg struct {
		Type         string             `json:"type"`
		You          Participant        `json:"you"`
		Participants []Participant      `json:"participants"`
		Tracks       []TrackInfo        `json:"tracks"`
		ICEServers   []webrtc.ICEServer `json:"ice_servers"`
	}
	sdpMsg struct {
		Type string `json:"type"`
		SDP  string `json:"sdp"`
	}
	candidateMsg struct {
		Type      string                  `json:"type"`
		PC        string                  `json:"pc"`
		Candidate webrtc.ICECandidateInit `json:"candidate"`
	}
	participantMsg struct {
		Type string `json:"type"`
		Participant
	}
	participantLeftMsg struct {
		Type string `json:"type"`
		User string `json:"user"`
	}
	trackAddedMsg struct {
		Type string `json:"type"`
		TrackInfo
	}
	trackRemovedMsg struct {
		Type  string `json:"type"`
		Track string `json:"track"`
	}
	trackMutedMsg struct {
		Type  string `json:"type"`
		Track string `json:"track"`
		Muted bool   `json:"muted"`
	}
	speakerMsg struct {
		Type string `json:"type"`
		User string `json:"user"`
	}
	removedMsg struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	errorMsg struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
)

// eventMessage maps a router event to its message (spec/client-api.md §5.3).
func eventMessage(ev Event) any {
	switch ev.Kind {
	case TrackAdded:
		return trackAddedMsg{Type: "track_added", TrackInfo: ev.Track.Info()}
	case TrackRemoved:
		return trackRemovedMsg{Type: "track_removed", Track: ev.Track.ID()}
	case TrackMuted:
		return trackMutedMsg{Type: "track_muted", Track: ev.Track.ID(), Muted: ev.Track.Info().Muted}
	case ParticipantJoined:
		return participantMsg{Type: "participant_joined", Participant: ev.Participant}
	case ParticipantLeft:
		return participantLeftMsg{Type: "participant_left", User: ev.Participant.User}
	case ParticipantUpdated:
		return participantMsg{Type: "participant_updated", Participant: ev.Participant}
	case SpeakerChanged:
		return speakerMsg{Type: "speaker", User: ev.Participant.User}
	}
	return nil
}

// readFrame returns the next text frame. Frames that are not text or are
// larger than maxFrameSize are consumed and reported as errFrame so the
// caller answers with an error and carries on.
func readFrame(ctx context.Context, ws *websocket.Conn) ([]byte, *errorMsg, error) {
	typ, r, err := ws.Reader(ctx)
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, maxFrameSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > maxFrameSize {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, nil, err
		}
		return nil, &errorMsg{Type: "error", Code: codeTooLarge, Message: "frame larger than 64 KiB ignored"}, nil
	}
	if typ != websocket.MessageText {
		return nil, &errorMsg{Type: "error", Code: codeBadFrame, Message: "binary frames are not part of the protocol"}, nil
	}
	return data, nil, nil
}

func decodeInbound(data []byte) (inbound, *errorMsg) {
	var m inbound
	if err := json.Unmarshal(data, &m); err != nil {
		return m, &errorMsg{Type: "error", Code: codeBadFrame, Message: "frame is not a JSON message: " + err.Error()}
	}
	if m.Type == "" {
		return m, &errorMsg{Type: "error", Code: codeBadFrame, Message: "message without type"}
	}
	return m, nil
}
