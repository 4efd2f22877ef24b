package livekit

import (
	"slices"
	"sync"

	lk "github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"
)

// Data packets travel between the LiveKit participants of one conference on
// this node, on the `_reliable` and `_lossy` data channels each client opens
// on its publisher connection (spec/client-api.md §8.6). They do not reach
// native clients nor other nodes.

// Names of the data channels LiveKit clients open.
const (
	reliableLabel = "_reliable"
	lossyLabel    = "_lossy"
	// maxDataPacket bounds one data message; LiveKit clients send at most
	// 15 KiB on the reliable channel.
	maxDataPacket = 64 << 10
)

// rooms are the LiveKit participants of each conference on this node.
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

func (r *rooms) others(conference string, p *participant) []*participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*participant, 0, len(r.by[conference]))
	for o := range r.by[conference] {
		if o != p {
			out = append(out, o)
		}
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

// dataFrom forwards a client's data packet to the other LiveKit
// participants it is meant for, with the sender set by the server so that
// nobody speaks for another.
func (p *participant) dataFrom(reliable bool, m webrtc.DataChannelMessage) {
	if !p.adm.grant.CanPublish || m.IsString || len(m.Data) > maxDataPacket {
		return
	}
	pkt := &lk.DataPacket{}
	if err := proto.Unmarshal(m.Data, pkt); err != nil {
		p.log.Debug("malformed data packet dropped", "err", err)
		return
	}
	conf := p.adm.grant.Conference
	me := liveKitIdentity(p.srv.named(conf, p.me))
	pkt.ParticipantIdentity = me
	dest := pkt.GetDestinationIdentities()
	if u := pkt.GetUser(); u != nil {
		u.ParticipantSid, u.ParticipantIdentity = p.me.User, me // read by older clients
		if len(dest) == 0 {
			dest = u.GetDestinationIdentities() // written by older clients
		}
	}
	data, err := proto.Marshal(pkt)
	if err != nil {
		return
	}
	for _, o := range p.srv.rooms.others(conf, p) {
		if len(dest) > 0 && !slices.Contains(dest, liveKitIdentity(p.srv.named(conf, o.me))) {
			continue
		}
		o.sendData(reliable, data)
	}
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
