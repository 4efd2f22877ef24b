package media

import (
	"errors"

	"github.com/pion/webrtc/v4"
)

// The control channel (spec/federation.md §10.4): what this side tells the
// peer of its conference, and how it applies what the peer says. The
// messages themselves are in trunk_wire.go.

func describe(up UpTrack) trunkTrack {
	info := up.Info()
	c := up.Codec()
	return trunkTrack{TrackInfo: info, Width: info.Width, Height: info.Height,
		Codec: trunkCodec{MimeType: c.MimeType, ClockRate: c.ClockRate, Channels: c.Channels, SDPFmtpLine: c.SDPFmtpLine}}
}

func (t *trunk) send(m controlMessage) {
	t.ctlMu.Lock()
	defer t.ctlMu.Unlock()
	t.sendLocked(m)
}

func (t *trunk) sendLocked(m controlMessage) {
	if !t.open || t.dc == nil {
		return
	}
	data, err := marshalControl(m)
	if err != nil {
		t.log.Error("encode trunk control message", "err", err)
		return
	}
	if err := t.dc.SendText(string(data)); err != nil {
		t.log.Debug("send trunk control message", "err", err)
	}
}

// sendState sends the full state of this side: its participants and the
// tracks the peer may receive. It is idempotent for the receiver, which
// reconciles (§10.4).
func (t *trunk) sendState() {
	t.ctlMu.Lock()
	defer t.ctlMu.Unlock()
	if !t.open {
		return
	}
	st := trunkStateMsg{Participants: []Participant{}, Tracks: []trunkTrack{}}
	c := t.conf
	c.mu.Lock()
	downs := c.peersLocked()
	people := make(map[Down]Participant, len(downs))
	for _, d := range downs {
		people[d] = c.downs[d]
	}
	tracks := make([]*upTrack, 0, len(c.trackOrder))
	for _, id := range c.trackOrder {
		tracks = append(tracks, c.tracks[id])
	}
	c.mu.Unlock()
	for _, d := range downs {
		if p := people[d]; p.User != "" && !t.ownDown(d) {
			st.Participants = append(st.Participants, t.described(p.announced()))
		}
	}
	var offer []*upTrack
	for _, up := range tracks {
		if t.mayOffer(up) {
			offer = append(offer, up)
			st.Tracks = append(st.Tracks, describe(up))
		}
	}
	t.mu.Lock()
	for _, up := range offer {
		t.offered[up.ID()] = up
	}
	// After a resync the peer states its wants again.
	t.asked = map[string]layerSet{}
	t.mu.Unlock()
	t.sendLocked(st)
}

func (t *trunk) ownDown(d Down) bool {
	r, ok := d.(*remoteParticipant)
	return ok && r.trunk == t
}

// mayOffer says whether a local track may cross to the peer: never back to
// the trunk it came from, and a member's tracks go to other members only
// when that member allowed relaying (§10.5). Another replica of this node
// is not another member: it gets every track its users could get here.
func (t *trunk) mayOffer(up *upTrack) bool {
	if t.carriesIn(up) {
		return false
	}
	if t.replica {
		return true
	}
	origin := t.set.originOf(t.conference, up)
	return origin == nil || (origin != t && origin.relay.Load())
}

// Notify implements Down: local changes become deltas to the peer.
func (t *trunk) Notify(ev Event) {
	switch ev.Kind {
	case TrackAdded:
		up, ok := ev.Track.(*upTrack)
		if !ok {
			return
		}
		t.ctlMu.Lock()
		defer t.ctlMu.Unlock()
		may := t.mayOffer(up)
		t.mu.Lock()
		offer := !t.closed && may
		if offer {
			t.offered[up.ID()] = up
		}
		t.mu.Unlock()
		if offer {
			info := describe(up)
			t.sendLocked(trunkTrackAddedMsg{Info: &info})
		}
	case TrackRemoved:
		t.withdraw(ev.Track)
	case TrackMuted:
		t.mu.Lock()
		_, ok := t.offered[ev.Track.ID()]
		t.mu.Unlock()
		if ok {
			t.send(trunkTrackMutedMsg{Track: ev.Track.ID(), Muted: ev.Track.Info().Muted})
		}
	case ParticipantJoined, ParticipantUpdated:
		if !t.isOwnParticipant(ev.Participant.User) {
			p := t.described(ev.Participant.announced())
			if ev.Kind == ParticipantUpdated {
				t.send(trunkParticipantUpdatedMsg{Participant: &p})
			} else {
				t.send(trunkParticipantJoinedMsg{Participant: &p})
			}
		}
	case ParticipantLeft:
		if !t.isOwnParticipant(ev.Participant.User) {
			t.send(trunkParticipantLeftMsg{User: ev.Participant.User})
		}
	}
}

// handleControl applies one message from the peer.
func (t *trunk) handleControl(data []byte) {
	msg, err := decodeControl(data)
	switch {
	case errors.Is(err, errControlTooLarge):
		t.log.Warn("trunk control message too large", "bytes", len(data))
		return
	case err != nil:
		t.log.Warn("malformed trunk control message", "err", err)
		return
	}
	switch m := msg.(type) {
	case trunkStateMsg:
		t.applyState(m)
	case trunkParticipantJoinedMsg:
		if m.Participant != nil {
			t.addParticipant(*m.Participant)
		}
	case trunkParticipantUpdatedMsg:
		if m.Participant != nil {
			t.updateParticipant(*m.Participant)
		}
	case trunkParticipantLeftMsg:
		t.dropParticipant(m.User, false)
	case trunkRelayMsg:
		t.setRelay(m.Relay)
	case trunkTrackAddedMsg:
		if m.Info != nil {
			t.addRemoteTrack(*m.Info)
		}
	case trunkTrackRemovedMsg:
		t.dropRemoteTrack(m.Track)
	case trunkTrackMutedMsg:
		t.mu.Lock()
		u, ok := t.remote[m.Track]
		t.mu.Unlock()
		if ok {
			t.conf.setMuted(u, m.Muted)
		}
	case trunkWantMsg:
		t.log.Debug("trunk want", "track", m.Track, "layers", m.Layers)
		t.want(m.Track, m.Layers)
	case trunkRatesMsg:
		t.applyRates(m)
	case trunkGrowMsg:
		if kind := webrtc.NewRTPCodecType(m.Kind); t.member && kind != 0 {
			t.startGrow(kind, m.Slots)
		}
	case trunkBindMsg:
		t.log.Debug("trunk bind", "slot", m.Slot, "track", m.Track, "layer", m.Layer)
		t.rxBind(m.Slot, m.Track, m.Layer)
	case trunkUnbindMsg:
		t.rxSlot(m.Slot).binding.Store(nil)
	case trunkDataMsg:
		t.receiveData(m)
	case trunkRefusedMsg:
		t.log.Warn("peer refused a track", "track", m.Track, "reason", m.Reason)
	}
}
