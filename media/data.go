package media

import (
	"slices"
)

// Data messages are what a participant's client sends to the others of its
// conference beside media: LiveKit's data packets (package livekit). The SFU
// carries them without reading them, to the local sessions whose handler
// takes them and, on the trunks' control channels, to the other nodes of the
// conference (spec/federation.md §10.4 `data`), where the same happens. A
// native client has no data channel: what native clients say to each other
// travels as signals (spec/client-api.md §5.3 `signal`).

// DataMessage is one data message of a conference.
type DataMessage struct {
	// From is the user reference of the participant who sent it; the SFU
	// sets it, so nobody speaks for another.
	From string
	// Sender is that participant as the SFU knows it (From is its User).
	Sender Participant
	// To are the user references, or the LiveKit identities their tokens
	// gave, of the participants it is meant for; empty: everyone.
	To []string
	// Reliable says whether it travelled on a reliable, ordered channel;
	// an unreliable one may be dropped when a trunk is congested.
	Reliable bool
	// Payload is the message as the protocol that sent it encoded it.
	Payload []byte
}

// DataReceiver is implemented by a SessionHandler that takes the data
// messages of the conference. Data is called without the session's locks;
// it must not block.
type DataReceiver interface {
	Data(DataMessage)
}

// maxDataMessage bounds a data message's payload; it crosses a trunk as
// base64 within a control message.
const maxDataMessage = 64 << 10

// Congestion bounds of a trunk's control channel: an unreliable data
// message is dropped above the first, a reliable one above the second,
// so that data never delays the control messages media depends on for
// long.
const (
	lossyDataBuffered    = 256 << 10
	reliableDataBuffered = 4 << 20
)

// SendData sends a data message of the session's participant to the others
// of the conference it joined; nothing is sent before Join.
func (s *Session) SendData(to []string, reliable bool, payload []byte) {
	c := s.c
	if len(payload) > maxDataMessage {
		c.log.Debug("data message too large; dropped", "bytes", len(payload))
		return
	}
	c.mu.Lock()
	conf := c.conf
	stopped := c.stopped
	c.mu.Unlock()
	if conf == nil || stopped {
		return
	}
	conf.sendData(DataMessage{From: c.me.User, Sender: c.me, To: to, Reliable: reliable, Payload: payload}, c)
}

// sendData delivers m, which came from the Down from (a local client, or the
// trunk it crossed), to the local sessions it is meant for and across every
// other trunk that leads to one of its recipients. A member's data crosses
// the host to other members only when the member allows relaying, as its
// media does (spec/federation.md §10.5).
func (c *conference) sendData(m DataMessage, from Down) {
	c.mu.Lock()
	peers := c.peersLocked()
	people := make(map[Down]Participant, len(c.downs))
	for d, p := range c.downs {
		people[d] = p
	}
	c.mu.Unlock()
	origin, _ := from.(*trunk)
	wanted := func(p Participant) bool { return len(m.To) == 0 || addressed(m.To, p) }
	for _, d := range peers {
		switch d := d.(type) {
		case *client:
			if d == from || d.handler == nil || !wanted(people[d]) {
				continue
			}
			if r, ok := d.handler.(DataReceiver); ok && !d.isStopped() {
				r.Data(m)
			}
		case *trunk:
			if d == origin || (origin != nil && !origin.relay.Load()) {
				continue
			}
			if len(m.To) == 0 || d.leadsToAny(m.To, people) {
				d.sendData(m)
			}
		}
	}
}

// leadsToAny says whether one of users is a participant that came over t.
func (t *trunk) leadsToAny(users []string, people map[Down]Participant) bool {
	for d, p := range people {
		if r, ok := d.(*remoteParticipant); ok && r.trunk == t && addressed(users, p) {
			return true
		}
	}
	return false
}

// addressed says whether to names p, by user reference or by the LiveKit
// identity its token gave it.
func addressed(to []string, p Participant) bool {
	return slices.Contains(to, p.User) || (p.LiveKitIdentity != "" && slices.Contains(to, p.LiveKitIdentity))
}

// sendData writes m on the control channel unless it is congested.
func (t *trunk) sendData(m DataMessage) {
	t.ctlMu.Lock()
	dc := t.dc
	open := t.open
	t.ctlMu.Unlock()
	if !open || dc == nil {
		return
	}
	limit := uint64(lossyDataBuffered)
	if m.Reliable {
		limit = reliableDataBuffered
	}
	if dc.BufferedAmount() > limit {
		t.log.Debug("trunk congested; data message dropped", "reliable", m.Reliable, "bytes", len(m.Payload))
		return
	}
	t.send(trunkDataMsg{From: m.From, To: m.To, Reliable: m.Reliable, Payload: m.Payload})
}

// receiveData delivers a data message from the peer: only one of the
// participants this trunk stands for may have sent it (§10.4).
func (t *trunk) receiveData(m trunkDataMsg) {
	t.mu.Lock()
	sender, ok := t.people[m.From]
	t.mu.Unlock()
	if !ok || len(m.Payload) > maxDataMessage {
		t.log.Debug("trunk data message refused", "from", m.From, "bytes", len(m.Payload))
		return
	}
	t.conf.sendData(DataMessage{From: m.From, Sender: sender.p, To: m.To, Reliable: m.Reliable, Payload: m.Payload}, t)
}

func (c *client) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}
