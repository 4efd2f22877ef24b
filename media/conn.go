package media

import (
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"time"
)

// This file is the whole boundary between the forwarding core and whatever
// produces or consumes media. A publishing client is an Up with UpTracks; a
// subscribing client is a Down whose DownTracks receive packets. A cascade
// trunk to another node will be both: its remote publishers become UpTracks
// here and the remote subscribers it stands for become DownTracks, so the core
// never needs to know which kind of party it is serving.

// Packet is one RTP packet on its way from an UpTrack to its sinks. Header and
// Payload point into the up-track's receive buffer: they are valid only for
// the duration of the WriteRTP call that carries them.
type Packet struct {
	Header  *rtp.Header
	Payload []byte
	// Layer is the simulcast layer index (0 is the smallest); 0 when the
	// track is not simulcast.
	Layer int
	// Keyframe is true on the first packet of a keyframe (and on every audio
	// packet): the points where a sink may start or switch layers.
	Keyframe bool
	// AudioLevel is the publisher's audio-level header extension byte (RFC
	// 6464: V bit and -dBov) when HasAudioLevel; trunks carry it on.
	AudioLevel    byte
	HasAudioLevel bool
	// Arrival is when the packet was received (Unix nanoseconds), 0 when
	// unknown; a sink uses it instead of reading the clock again.
	Arrival int64
}

// UpTrack is a track entering the SFU.
type UpTrack interface {
	ID() string
	// Info describes the track as announced to clients (spec/client-api.md §5).
	Info() TrackInfo
	Codec() webrtc.RTPCodecCapability
	AddSink(DownTrack)
	RemoveSink(DownTrack)
	// RequestKeyframe asks the source for a keyframe on layer; requests are
	// merged and rate-limited by the up-track.
	RequestKeyframe(layer int)
	// Cached copies the cached packet with sequence number seq of layer into
	// buf, so a sink can answer a NACK without asking the source.
	Cached(layer int, seq uint16, buf []byte) (int, bool)
	// LayerUsable reports whether layer currently receives media, and its
	// bitrate in bits per second.
	LayerUsable(layer int) (bitrate uint64, ok bool)
	// RecentKeyframe is the sequence number of the first packet of layer's
	// last keyframe, if it arrived within the last d. Called from a sink's
	// WriteRTP, so the answer is never newer than the packet being written.
	RecentKeyframe(layer int, d time.Duration) (seq uint16, ok bool)
}

// DownTrack is where an up-track's packets go.
type DownTrack interface {
	// WriteRTP is the hot path: it must not block and must not keep p.
	WriteRTP(p *Packet)
	// Close tells the sink its up-track has gone.
	Close()
}

// Down is a party of a conference that hears about tracks and participants:
// a client, or a trunk standing for a remote node's participants.
type Down interface {
	Notify(Event)
}

// EventKind says what changed in a conference.
type EventKind int

// Events the router delivers to every Down of a conference.
const (
	TrackAdded EventKind = iota + 1
	TrackRemoved
	TrackMuted
	ParticipantJoined
	ParticipantLeft
	SpeakerChanged
	// ParticipantUpdated: a participant's description changed, so far only
	// whether its media is withheld from this node (spec/client-api.md §5.3).
	ParticipantUpdated
)

// Event is one change in a conference. Track is set for track events,
// Participant for participant and speaker events.
type Event struct {
	Kind        EventKind
	Track       UpTrack
	Participant Participant
}
