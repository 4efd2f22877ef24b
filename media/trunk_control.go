package media

import (
	"encoding/json"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Control channel messages (spec/federation.md §10.4). Every message is one
// JSON object with a "type"; receivers ignore unknown types, so either side
// may add messages later.
type (
	controlMsg struct {
		Type         string        `json:"type"`
		Participants []Participant `json:"participants,omitempty"`
		Tracks       []trunkTrack  `json:"tracks,omitempty"`
		Participant  *Participant  `json:"participant,omitempty"`
		User         string        `json:"user,omitempty"`
		Track        string        `json:"track,omitempty"`
		TrackInfo    *trunkTrack   `json:"info,omitempty"`
		Muted        bool          `json:"muted,omitempty"`
		Layer        int           `json:"layer"`
		Slot         string        `json:"slot,omitempty"`
		Reason       string        `json:"reason,omitempty"`
		// Layers is the set a `want` asks for; Rates a `rates` report.
		Layers []int               `json:"layers,omitempty"`
		Rates  map[string][]uint64 `json:"rates,omitempty"`
		// Kind is the slot kind a `grow` asks for, Slots how many of it
		// the asking side had.
		Kind  string `json:"kind,omitempty"`
		Slots int    `json:"slots,omitempty"`
		// Relay is the permission a `relay` message carries.
		Relay bool `json:"relay,omitempty"`
	}
	// relayMsg is the member's permission to relay its media (§10.5).
	relayMsg struct {
		Type  string `json:"type"`
		Relay bool   `json:"relay"`
	}
	wantMsg struct {
		Type   string `json:"type"`
		Track  string `json:"track"`
		Layers []int  `json:"layers"`
	}
	ratesMsg struct {
		Type  string              `json:"type"`
		Rates map[string][]uint64 `json:"rates"`
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

// maxControlMessage bounds one control message; a full state of a large
// conference fits well within it.
const maxControlMessage = 1 << 20

func describe(up UpTrack) trunkTrack {
	info := up.Info()
	c := up.Codec()
	return trunkTrack{TrackInfo: info, Width: info.Width, Height: info.Height,
		Codec: trunkCodec{MimeType: c.MimeType, ClockRate: c.ClockRate, Channels: c.Channels, SDPFmtpLine: c.SDPFmtpLine}}
}

func (t *trunk) send(m any) {
	t.ctlMu.Lock()
	defer t.ctlMu.Unlock()
	t.sendLocked(m)
}

func (t *trunk) sendLocked(m any) {
	if !t.open || t.dc == nil {
		return
	}
	data, err := json.Marshal(m)
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
	st := controlMsg{Type: "state", Participants: []Participant{}, Tracks: []trunkTrack{}}
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
// when that member allowed relaying (§10.5).
func (t *trunk) mayOffer(up *upTrack) bool {
	if t.carriesIn(up) {
		return false
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
			t.sendLocked(controlMsg{Type: "track_added", TrackInfo: &info})
		}
	case TrackRemoved:
		t.withdraw(ev.Track)
	case TrackMuted:
		t.mu.Lock()
		_, ok := t.offered[ev.Track.ID()]
		t.mu.Unlock()
		if ok {
			t.send(controlMsg{Type: "track_muted", Track: ev.Track.ID(), Muted: ev.Track.Info().Muted})
		}
	case ParticipantJoined, ParticipantUpdated:
		if !t.isOwnParticipant(ev.Participant.User) {
			p := t.described(ev.Participant.announced())
			typ := "participant_joined"
			if ev.Kind == ParticipantUpdated {
				typ = "participant_updated"
			}
			t.send(controlMsg{Type: typ, Participant: &p})
		}
	case ParticipantLeft:
		if !t.isOwnParticipant(ev.Participant.User) {
			t.send(controlMsg{Type: "participant_left", User: ev.Participant.User})
		}
	}
}

// handleControl applies one message from the peer.
func (t *trunk) handleControl(data []byte) {
	if len(data) > maxControlMessage {
		t.log.Warn("trunk control message too large", "bytes", len(data))
		return
	}
	var m controlMsg
	if err := json.Unmarshal(data, &m); err != nil {
		t.log.Warn("malformed trunk control message", "err", err)
		return
	}
	switch m.Type {
	case "state":
		t.applyState(m)
	case "participant_joined":
		if m.Participant != nil {
			t.addParticipant(*m.Participant)
		}
	case "participant_updated":
		if m.Participant != nil {
			t.updateParticipant(*m.Participant)
		}
	case "participant_left":
		t.dropParticipant(m.User, false)
	case "relay":
		t.setRelay(m.Relay)
	case "track_added":
		if m.TrackInfo != nil {
			t.addRemoteTrack(*m.TrackInfo)
		}
	case "track_removed":
		t.dropRemoteTrack(m.Track)
	case "track_muted":
		t.mu.Lock()
		u, ok := t.remote[m.Track]
		t.mu.Unlock()
		if ok {
			t.conf.setMuted(u, m.Muted)
		}
	case "want":
		t.log.Debug("trunk want", "track", m.Track, "layers", m.Layers)
		t.want(m.Track, m.Layers)
	case "rates":
		t.applyRates(m.Rates)
	case "grow":
		if kind := webrtc.NewRTPCodecType(m.Kind); t.member && kind != 0 {
			t.startGrow(kind, m.Slots)
		}
	case "bind":
		t.log.Debug("trunk bind", "slot", m.Slot, "track", m.Track, "layer", m.Layer)
		t.rxBind(m.Slot, m.Track, m.Layer)
	case "unbind":
		t.rxSlot(m.Slot).binding.Store(nil)
	case "refused":
		t.log.Warn("peer refused a track", "track", m.Track, "reason", m.Reason)
	}
}

// want applies the peer's demand for one of the tracks offered to it:
// exactly the wanted layers cross, each on its own slot; an empty set stops
// the track (§10.4).
func (t *trunk) want(track string, layers []int) {
	t.mu.Lock()
	delete(t.unmet, track)
	up, ok := t.offered[track]
	if !ok || t.closed {
		t.mu.Unlock()
		if len(layers) > 0 {
			t.send(controlMsg{Type: "refused", Track: track, Layer: layers[0], Reason: "not offered"})
		}
		return
	}
	info := up.Info()
	top := 0
	if len(info.Layers) > 1 {
		top = len(info.Layers) - 1
	}
	var wanted layerSet
	for _, l := range layers {
		if l < 0 || l > top {
			t.mu.Unlock()
			t.send(controlMsg{Type: "refused", Track: track, Layer: l, Reason: "no such layer"})
			return
		}
		wanted = wanted.with(l)
	}
	var unbind []*trunkSlot
	var have layerSet
	var free []*trunkSlot
	for _, s := range t.slots {
		s.mu.Lock()
		bound, l := s.up, s.layer
		s.mu.Unlock()
		switch {
		case bound == up && !wanted.has(l):
			unbind = append(unbind, s)
		case bound == up:
			have = have.with(l)
		case bound == nil && s.kind.String() == info.Kind:
			free = append(free, s)
		}
	}
	counter, ok := t.sent[track]
	if !ok {
		counter = &trackCounter{}
		t.sent[track] = counter
	}
	t.mu.Unlock()

	for _, s := range unbind {
		s.unbind()
		t.send(controlMsg{Type: "unbind", Slot: s.mid})
	}
	for _, l := range wanted.list() {
		if have.has(l) {
			continue
		}
		var slot *trunkSlot
		for len(free) > 0 && slot == nil {
			if free[0].free() {
				slot = free[0]
			}
			free = free[1:]
		}
		if slot == nil {
			if t.needSlots(webrtc.NewRTPCodecType(info.Kind), track, wanted) {
				return
			}
			t.log.Warn("trunk slot pool exhausted", "track", track, "layer", l)
			t.send(controlMsg{Type: "refused", Track: track, Layer: l, Reason: "no free slot"})
			return
		}
		if err := slot.bind(up, l, counter); err != nil {
			t.send(controlMsg{Type: "refused", Track: track, Layer: l, Reason: "codec not negotiated"})
			return
		}
		// The peer learns the binding before the first packet is sent.
		t.send(controlMsg{Type: "bind", Slot: slot.mid, Track: track, Layer: l})
		up.AddSink(slot)
		t.mu.Lock()
		_, still := t.offered[track]
		t.mu.Unlock()
		if !still {
			// Withdrawn meanwhile (relay policy, §10.5).
			slot.unbind()
			t.send(controlMsg{Type: "unbind", Slot: slot.mid})
			return
		}
		up.RequestKeyframe(l)
	}
}

// applyRates records the peer's report of which layers of its tracks are
// live, so local subscribers can choose a layer that does not cross yet.
func (t *trunk) applyRates(rates map[string][]uint64) {
	now := time.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, r := range rates {
		if u, ok := t.remote[id]; ok {
			u.setPeerRates(r, now)
		}
	}
}

// receivedLevelID is the ID of the audio-level extension the peer sends on
// audio slots, 0 if it was not negotiated.
func (t *trunk) receivedLevelID() uint8 {
	for _, tr := range t.pc.GetTransceivers() {
		if tr.Kind() != webrtc.RTPCodecTypeAudio || tr.Receiver() == nil {
			continue
		}
		for _, ext := range tr.Receiver().GetParameters().HeaderExtensions {
			if ext.URI == sdp.AudioLevelURI && ext.ID > 0 && ext.ID < 15 {
				return uint8(ext.ID)
			}
		}
	}
	return 0
}

// rxBind records what the peer will send on slot.
func (t *trunk) rxBind(slot, track string, layer int) {
	if layer < 0 || layer >= maxLayers {
		return
	}
	t.mu.Lock()
	u, ok := t.remote[track]
	t.mu.Unlock()
	rs := t.rxSlot(slot)
	if !ok {
		rs.binding.Store(nil)
		return
	}
	if ssrc := rs.ssrc.Load(); ssrc != 0 {
		u.layers[layer].ssrc.Store(ssrc)
	}
	// A layer crosses on one slot at a time: a slot that still carried it
	// (its unbind not yet seen) stops delivering into it now.
	t.mu.Lock()
	for _, other := range t.rx {
		if b := other.binding.Load(); other != rs && b != nil && b.up == u && b.layer == layer {
			other.binding.Store(nil)
		}
	}
	t.mu.Unlock()
	rs.binding.Store(&rxBinding{up: u, layer: layer})
}

// sentOf reports how many packets of track crossed this trunk, per layer.
func (t *trunk) sentOf(track string) [maxLayers]uint64 {
	var out [maxLayers]uint64
	t.mu.Lock()
	c, ok := t.sent[track]
	t.mu.Unlock()
	if ok {
		for i := range out {
			out[i] = c.packets[i].Load()
		}
	}
	return out
}
