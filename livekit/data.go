package livekit

import (
	"slices"
	"sync"

	lk "github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"

	"github.com/entente-org/entente/media"
)

// Data packets travel on the `_reliable` and `_lossy` data channels each
// LiveKit client opens on its publisher connection (spec/client-api.md
// §8.6). The SFU carries them (media.DataMessage) to the other LiveKit
// participants of the conference, on this node and, across the trunks'
// control channels, on the other nodes; chat is carried as native chat
// instead (chat.go), so that native clients and Matrix read it too.

// Names of the data channels LiveKit clients open.
const (
	reliableLabel = "_reliable"
	lossyLabel    = "_lossy"
	// maxDataPacket bounds one data message; LiveKit clients send at most
	// 15 KiB on the reliable channel.
	maxDataPacket = 64 << 10
)

// rooms are the LiveKit participants of each conference on this node, to
// whom native chat is delivered (chat.go).
type rooms struct {
	mu sync.Mutex
	by map[string]map[*participant]struct{}
}

func (r *rooms) add(conference string, p *participant) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.by == nil {
		r.by = make(map[string]map[*participant]struct{})
	}
	if r.by[conference] == nil {
		r.by[conference] = make(map[*participant]struct{})
	}
	r.by[conference][p] = struct{}{}
}

// remove reports whether p was the conference's last LiveKit participant
// on this node.
func (r *rooms) remove(conference string, p *participant) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.by[conference], p)
	if len(r.by[conference]) == 0 {
		delete(r.by, conference)
		return true
	}
	return false
}

func (r *rooms) members(conference string) []*participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*participant, 0, len(r.by[conference]))
	for o := range r.by[conference] {
		out = append(out, o)
	}
	return out
}

// DataChannel implements media.DataChannelHandler.
func (p *participant) DataChannel(dc *webrtc.DataChannel) {
	reliable := true
	switch dc.Label() {
	case reliableLabel:
	case lossyLabel:
		reliable = false
	default:
		return
	}
	p.dmu.Lock()
	if reliable {
		p.reliable = dc
	} else {
		p.lossy = dc
	}
	p.dmu.Unlock()
	dc.OnMessage(func(m webrtc.DataChannelMessage) { p.dataFrom(reliable, m) })
}

// dataFrom sends a client's data packet on to the participants it is meant
// for, with the sender set by the server so that nobody speaks for another;
// a chat line becomes native chat instead (chat.go).
func (p *participant) dataFrom(reliable bool, m webrtc.DataChannelMessage) {
	if !p.adm.grant.CanPublish || m.IsString || len(m.Data) > maxDataPacket {
		return
	}
	pkt := &lk.DataPacket{}
	if err := proto.Unmarshal(m.Data, pkt); err != nil {
		p.log.Debug("malformed data packet dropped", "err", err)
		return
	}
	if reliable && pkt.GetSequence() != 0 {
		p.lastSeq.Store(pkt.GetSequence())
	}
	dest := p.recipients(destinations(pkt))
	if len(dest) == 0 && p.chatFrom(pkt) {
		return
	}
	conf := p.adm.grant.Conference
	stamp(pkt, p.me.User, liveKitIdentity(p.srv.named(conf, p.me)))
	data, err := proto.Marshal(pkt)
	if err != nil {
		return
	}
	p.sess.SendData(dest, reliable, data)
}

// destinations are the identities a packet is meant for; empty: everyone.
func destinations(pkt *lk.DataPacket) []string {
	if dest := pkt.GetDestinationIdentities(); len(dest) > 0 {
		return dest
	}
	return pkt.GetUser().GetDestinationIdentities() // written by older clients
}

// recipients adds to the LiveKit identities a packet is addressed to the
// user reference of each local participant known by one of them under
// another name (CallIdentities), since the SFU routes data by user reference
// or by the identity a participant's own token gave it.
func (p *participant) recipients(dest []string) []string {
	if len(dest) == 0 {
		return nil
	}
	conf := p.adm.grant.Conference
	out := slices.Clone(dest)
	for _, o := range p.srv.rooms.members(conf) {
		if id := liveKitIdentity(p.srv.named(conf, o.me)); id != o.me.User && slices.Contains(dest, id) {
			out = append(out, o.me.User)
		}
	}
	return out
}

// stamp sets the sender of a packet: its identity is the one LiveKit
// clients know the sender by, its sid the sender's user reference.
func stamp(pkt *lk.DataPacket, user, identity string) {
	pkt.ParticipantIdentity = identity
	if u := pkt.GetUser(); u != nil {
		u.ParticipantSid, u.ParticipantIdentity = user, identity // read by older clients
	}
}

// Data implements media.DataReceiver: a data packet of another participant
// of the conference, from this node or another. The packet is stamped again
// with the sender the SFU vouches for, whatever the other node wrote in it.
func (p *participant) Data(m media.DataMessage) {
	data := m.Payload
	pkt := &lk.DataPacket{}
	if err := proto.Unmarshal(data, pkt); err != nil {
		return
	}
	id := liveKitIdentity(p.srv.named(p.adm.grant.Conference, m.Sender))
	u := pkt.GetUser()
	if pkt.GetParticipantIdentity() != id || (u != nil && (u.GetParticipantIdentity() != id || u.GetParticipantSid() != m.Sender.User)) {
		stamp(pkt, m.Sender.User, id)
		var err error
		if data, err = proto.Marshal(pkt); err != nil {
			return
		}
	}
	p.sendData(m.Reliable, data)
}

// sendData writes on the channel of the same kind, or the other one when
// the client has not opened it.
func (p *participant) sendData(reliable bool, data []byte) {
	p.dmu.Lock()
	dc := p.lossy
	if reliable || dc == nil {
		dc = p.reliable
	}
	if dc == nil {
		dc = p.lossy
	}
	p.dmu.Unlock()
	if dc == nil || dc.ReadyState() != webrtc.DataChannelStateOpen {
		return
	}
	if err := dc.Send(data); err != nil {
		p.log.Debug("data packet not sent", "err", err)
	}
}
