package media

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"github.com/coder/websocket"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// client is one user's signalling connection and its two peer connections
// (spec/client-api.md §5): publish (client offers) and subscribe (SFU
// offers). It is the Up of the tracks it publishes and a Down of its
// conference.
type client struct {
	sfu          *SFU
	conferenceID string
	me           Participant
	ws           *websocket.Conn
	log          *slog.Logger
	// handler, when set, receives what the native protocol would send
	// over ws: the client is a Session (session.go).
	handler SessionHandler

	outbox   chan []byte
	closing  chan struct{}
	stopOnce sync.Once

	// outMu orders router events after `joined`; it is a leaf lock.
	outMu  sync.Mutex
	ready  bool
	early  []any
	reason string

	mu        sync.Mutex
	conf      *conference
	pub, sub  *webrtc.PeerConnection
	pubGate   candidateGate
	subGate   candidateGate
	announced map[string]publishedTrack
	published map[string]*upTrack
	// retired are the mids of unpublished tracks, never used again.
	retired        map[string]bool
	subs           map[string]*subscription
	awaitingAnswer bool
	renegotiate    bool
	stopped        bool
}

type subscription struct {
	down   *downTrack
	sender *webrtc.RTPSender
}

// send queues a message without blocking; a client that cannot keep up with
// its outbox is disconnected rather than slowing the conference down.
func (c *client) send(msg any) {
	if c.handler != nil {
		c.deliver(msg)
		return
	}
	data, err := json.Marshal(msg)
	if err != nil {
		c.log.Error("encode signalling message", "err", err)
		return
	}
	select {
	case c.outbox <- data:
	default:
		c.log.Warn("signalling outbox full, disconnecting")
		go c.stop("")
	}
}

func (c *client) sendError(code, message string) {
	c.send(errorMsg{Type: "error", Code: code, Message: message})
}

// Notify implements Down.
func (c *client) Notify(ev Event) {
	var msg any = ev
	if c.handler == nil {
		msg = eventMessage(ev)
	}
	if msg == nil {
		return
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if !c.ready {
		c.early = append(c.early, msg)
		return
	}
	c.send(msg)
}

// handle dispatches one client message (spec/client-api.md §5.2).
func (c *client) handle(m inbound) {
	if m.Type == "leave" {
		c.stop("")
		return
	}
	if m.Type == "join" {
		// Before c.mu: the session taken over may be joining at the same
		// moment, and each stop takes the other's lock.
		c.sfu.takeOver(c)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	if m.Type != "join" && c.conf == nil {
		switch m.Type {
		case "publish_offer", "subscribe_answer", "candidate", "subscribe", "unsubscribe", "mute", "unpublish":
			c.sendError(codeNotJoined, m.Type+" before join")
			return
		}
	}
	switch m.Type {
	case "join":
		c.join()
	case "publish_offer":
		c.publishOffer(m)
	case "subscribe_answer":
		c.subscribeAnswer(m)
	case "candidate":
		c.candidate(m)
	case "subscribe":
		c.subscribe(m)
	case "unsubscribe":
		c.unsubscribe(m.Track)
	case "mute":
		c.mute(m)
	case "unpublish":
		c.unpublish(m.Track)
	default:
		c.sendError(codeUnknownType, fmt.Sprintf("unknown message type %q", m.Type))
	}
}

func (c *client) join() {
	if c.conf != nil {
		c.sendError(codeAlreadyJoined, "already joined")
		return
	}
	sub, err := c.sfu.newPeerConnection(c.sfu.subAPI)
	if err != nil {
		c.log.Error("create subscribe peer connection", "err", err)
		c.sendError(codeInternal, "cannot create peer connection")
		return
	}
	c.sub = sub
	c.watch(sub, "subscribe", &c.subGate)
	go c.sendReports()

	conf, others, tracks := c.sfu.router.join(c.conferenceID, c, c.me)
	c.conf = conf
	c.outMu.Lock()
	c.send(joinedMsg{Type: "joined", You: c.me, Participants: others, Tracks: tracks, ICEServers: c.sfu.iceServers(c.me.User)})
	for _, msg := range c.early {
		c.send(msg)
	}
	c.early, c.ready = nil, true
	c.outMu.Unlock()
	c.sfu.trunks.localJoined(c.conferenceID)
	c.log.Info("joined media")
}

// watch wires a peer connection's candidates and failure to the client.
func (c *client) watch(pc *webrtc.PeerConnection, name string, gate *candidateGate) {
	sendCandidate := func(init webrtc.ICECandidateInit) {
		c.send(candidateMsg{Type: "candidate", PC: name, Candidate: init})
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			gate.add(cand.ToJSON(), sendCandidate)
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed {
			c.log.Info("peer connection failed", "pc", name)
			go c.stop("")
		}
	})
}

func (c *client) publishOffer(m inbound) {
	if m.SDP == "" {
		c.sendError(codeBadSDP, "publish_offer without sdp")
		return
	}
	for _, t := range m.Tracks {
		if err := t.validate(); err != nil {
			c.sendError(codeBadRequest, fmt.Sprintf("track %q: %v", t.Mid, err))
			return
		}
	}
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(m.SDP); err != nil {
		c.sendError(codeBadSDP, "publish_offer sdp does not parse")
		return
	}
	if c.pub == nil {
		pub, err := c.sfu.newPeerConnection(c.sfu.pubAPI)
		if err != nil {
			c.log.Error("create publish peer connection", "err", err)
			c.sendError(codeInternal, "cannot create peer connection")
			return
		}
		c.pub = pub
		c.watch(pub, "publish", &c.pubGate)
		pub.OnTrack(c.onTrack)
		if dh, ok := c.handler.(DataChannelHandler); ok {
			pub.OnDataChannel(dh.DataChannel)
		}
	}
	for _, t := range m.Tracks {
		if c.retired[t.Mid] {
			c.sendError(codeBadRequest, fmt.Sprintf("track %q: m-section was unpublished; publish in a new one", t.Mid))
			return
		}
	}
	for _, t := range m.Tracks {
		c.announced[t.Mid] = t
	}
	if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
		c.sendError(codeBadSDP, "publish_offer rejected: "+err.Error())
		return
	}
	answer, err := c.pub.CreateAnswer(nil)
	if err == nil {
		err = c.pub.SetLocalDescription(answer)
	}
	if err != nil {
		c.log.Warn("answer publish offer", "err", err)
		c.sendError(codeBadSDP, "cannot answer publish_offer: "+err.Error())
		return
	}
	c.send(sdpMsg{Type: "publish_answer", SDP: answer.SDP})
	c.pubGate.release(func(init webrtc.ICECandidateInit) {
		c.send(candidateMsg{Type: "candidate", PC: "publish", Candidate: init})
	})
}

// onTrack turns each incoming stream into an up-track layer. Simulcast
// layers of one transceiver share one up-track.
func (c *client) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	layer, ok := layerIndex(remote.RID())
	if !ok {
		c.log.Debug("ignoring stream with unknown rid", "rid", remote.RID())
		return
	}
	c.mu.Lock()
	if c.stopped || c.pub == nil {
		c.mu.Unlock()
		return
	}
	mid := ""
	for _, tr := range c.pub.GetTransceivers() {
		if tr.Receiver() == receiver {
			mid = tr.Mid()
		}
	}
	announced, ok := c.announced[mid]
	if !ok || announced.Kind != remote.Kind().String() {
		c.mu.Unlock()
		c.log.Debug("ignoring unannounced track", "mid", mid)
		return
	}
	t, existing := c.published[mid]
	if !existing {
		t = c.newUpTrack(announced, remote, receiver)
		c.published[mid] = t
	}
	conf := c.conf
	c.mu.Unlock()

	if !existing {
		conf.publish(t)
		c.log.Info("track published", "track", t.ID(), "kind", t.info.Kind, "source", t.info.Source)
	}
	reader := t.claimLayer(layer, remote)
	if reader == nil {
		// pion re-bound this TrackRemote to a second SSRC carrying the
		// same rid; its reader follows it (readLayer). Two faults of pion
		// v4.2.26 remain here: receiveForRid writes the TrackRemote's
		// params under its lock while TrackRemote.Read reads them without
		// it (checkAndUpdateTrack), a data race; and the reader stays
		// blocked on the old SSRC's stream until that delivers once more.
		// A pion publisher whose NACK responder copies the rid onto RTX
		// packets triggers this; browsers label RTX with the repaired rid.
		c.log.Debug("layer stream replaced", "track", t.ID(), "rid", remote.RID(), "ssrc", remote.SSRC(), "codec", remote.Codec().MimeType)
		return
	}
	reader.pt = streamPayloadType(remote.Codec())
	go drainRTCP(receiver, remote.RID())
	t.readFrom(layer, uint32(remote.SSRC()), reader)
}

func (c *client) newUpTrack(a publishedTrack, remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) *upTrack {
	id := a.id
	if id == "" {
		id = newTrackID()
	}
	info := TrackInfo{
		ID: id, Owner: c.me.User, Kind: a.Kind, Source: a.Source,
		Layers: []string{}, Width: a.Width, Height: a.Height,
	}
	if a.Simulcast {
		info.Layers = simulcastRIDs[:]
	}
	if info.Width == 0 || info.Height == 0 {
		info.Width, info.Height = 1280, 720
	}
	t := newUpTrack(info, remote.Codec().RTPCodecCapability, remote.Kind(), pliSender(c.pub), c.sfu.metrics, c.log)
	t.out = c.sfu.out
	for _, ext := range receiver.GetParameters().HeaderExtensions {
		if ext.URI == sdp.AudioLevelURI && ext.ID > 0 && ext.ID < 256 {
			t.audioLevelID = uint8(ext.ID)
		}
	}
	return t
}

func newTrackID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *client) subscribeAnswer(m inbound) {
	if !c.awaitingAnswer {
		c.sendError(codeUnexpectedReply, "no subscribe_offer is outstanding")
		return
	}
	var parsed sdp.SessionDescription
	err := parsed.UnmarshalString(m.SDP)
	if err == nil {
		err = c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP})
	}
	c.awaitingAnswer = false
	if err != nil {
		c.sendError(codeBadSDP, "subscribe_answer rejected; a new subscribe_offer follows")
		if rbErr := c.sub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); rbErr != nil {
			c.log.Warn("roll back subscribe offer", "err", rbErr)
		}
		c.negotiate()
		return
	}
	if c.renegotiate {
		c.renegotiate = false
		c.negotiate()
	}
}

// negotiate sends a new subscribe_offer, or remembers to once the
// outstanding one is answered. Called with c.mu held.
func (c *client) negotiate() {
	if c.awaitingAnswer {
		c.renegotiate = true
		return
	}
	c.offerSubscriber(nil)
}

// offerSubscriber creates, sets and sends a subscribe offer. Called with c.mu
// held and no offer outstanding.
func (c *client) offerSubscriber(opts *webrtc.OfferOptions) {
	if opts != nil && opts.ICERestart {
		// The restart gathers new candidates, which follow the new offer.
		c.subGate.hold()
	}
	offer, err := c.sub.CreateOffer(opts)
	if err == nil {
		err = c.sub.SetLocalDescription(offer)
	}
	if err != nil {
		if c.stopped || c.sub.ConnectionState() == webrtc.PeerConnectionStateClosed {
			// The client is going; nothing is left to offer to.
			c.log.Debug("create subscribe offer after close", "err", err)
			return
		}
		c.log.Warn("create subscribe offer", "err", err)
		return
	}
	c.awaitingAnswer = true
	c.send(sdpMsg{Type: "subscribe_offer", SDP: offer.SDP})
	c.subGate.release(func(init webrtc.ICECandidateInit) {
		c.send(candidateMsg{Type: "candidate", PC: "subscribe", Candidate: init})
	})
}

func (c *client) candidate(m inbound) {
	if m.Candidate == nil {
		c.sendError(codeBadCandidate, "candidate missing")
		return
	}
	var pc *webrtc.PeerConnection
	switch m.PC {
	case "publish":
		pc = c.pub
	case "subscribe":
		pc = c.sub
	default:
		c.sendError(codeBadCandidate, `pc must be "publish" or "subscribe"`)
		return
	}
	if pc == nil || pc.RemoteDescription() == nil {
		c.sendError(codeBadCandidate, "candidate before description")
		return
	}
	if err := pc.AddICECandidate(*m.Candidate); err != nil {
		c.sendError(codeBadCandidate, "candidate rejected: "+err.Error())
	}
}

func (c *client) mute(m inbound) {
	for _, t := range c.published {
		if t.ID() == m.Track {
			c.conf.setMuted(t, m.Muted)
			return
		}
	}
	c.sendError(codeUnknownTrack, fmt.Sprintf("no published track %q", m.Track))
}

// unpublish withdraws one of the client's own tracks: subscribers here and
// on other nodes get track_removed and its media stops at once. Its
// m-section is retired; media still arriving on it is dropped
// (spec/client-api.md §5.2).
func (c *client) unpublish(track string) {
	for mid, t := range c.published {
		if t.ID() != track {
			continue
		}
		delete(c.published, mid)
		delete(c.announced, mid)
		c.retired[mid] = true
		c.conf.unpublish(t)
		c.log.Info("track unpublished", "track", t.ID(), "source", t.info.Source)
		return
	}
	c.sendError(codeUnknownTrack, fmt.Sprintf("no published track %q", track))
}

// stop ends the client's media at once: its tracks leave the conference and
// both peer connections close. A non-empty reason is sent as `removed`
// first. The WebSocket closes once the outbox is flushed.
func (c *client) stop(reason string) {
	c.stopOnce.Do(func() {
		if reason != "" && reason != ReasonRestart {
			c.send(removedMsg{Type: "removed", Reason: reason})
		}
		c.mu.Lock()
		c.stopped = true
		conf := c.conf
		published := make([]*upTrack, 0, len(c.published))
		for _, t := range c.published {
			published = append(published, t)
		}
		pcs := []*webrtc.PeerConnection{c.pub, c.sub}
		subs := make([]*subscription, 0, len(c.subs))
		for _, s := range c.subs {
			subs = append(subs, s)
		}
		c.mu.Unlock()
		// The others' tracks stop feeding this client's down-tracks.
		for _, s := range subs {
			s.down.up.RemoveSink(s.down)
		}
		if conf != nil {
			conf.leave(c, published)
			c.sfu.trunks.localLeft(c.conferenceID)
		}
		for _, pc := range pcs {
			if pc != nil {
				if err := pc.Close(); err != nil {
					c.log.Debug("close peer connection", "err", err)
				}
				c.sfu.metrics.peerConnections.Dec()
			}
		}
		c.outMu.Lock()
		c.reason = reason
		c.outMu.Unlock()
		close(c.closing)
		if c.handler != nil {
			c.handler.Closed(reason)
		}
		c.log.Info("left media", "reason", reason)
	})
}
