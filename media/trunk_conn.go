package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// trunk is one side of the association between this SFU and a peer node's
// SFU for one conference (spec/federation.md §10). It is a Down of the
// conference, so it hears local tracks and participants and offers them to
// the peer; and the peer's tracks and participants become local up-tracks
// and participants here, so local clients use them like any other.
//
// Concurrency. The fields above relay are set by newTrunk and never change
// after it. Three mutexes guard the rest, each for one invariant:
//
//   - mu guards the trunk's state (everything below it). It is held only
//     for reads and writes of that state: never while sending, negotiating,
//     or calling into the conference, the trunk set or another trunk.
//     A slot's own mutex may be taken inside it, never the reverse.
//   - ctlMu orders what the peer hears: it is held from the moment a
//     message's content is read from the state to the moment the message is
//     sent, so a full `state` is never overtaken by a delta taken before it,
//     nor a delta by a state that did not contain it (§10.4). It also
//     guards the channel itself (dc, open) and relayTold. Under it a sender
//     may take the conference's, the trunk set's, and any trunk's mu; it
//     is never taken under any of them. It cannot be mu: deciding whether
//     a track may be offered reads other trunks' state (mayOffer), and two
//     trunks doing so at once would each hold their own mu and wait for
//     the other's.
//   - negMu serialises the member's negotiations (ICE restarts and slot
//     growth), which run for seconds; mu and ctlMu stay free meanwhile, so
//     the control channel and media go on. It is taken before mu, never
//     under it. The host applies offers as they arrive; the member sends
//     the next one only after the answer to the last.
//
// Teardown happens once (closeOnce), and every caller of close returns
// after it is done; mu's closed says it started. relay is read by other
// trunks of the conference without a lock, so it is atomic.
type trunk struct {
	set        *trunkSet
	conference string
	peer       string
	// member is true on the side that offered (the member node).
	member    bool
	relayKick chan struct{}
	log       *slog.Logger
	pc        *webrtc.PeerConnection
	conf      *conference
	done      chan struct{}
	// relay, on the host side, is the member's permission to forward its
	// participants' media to other member nodes: set by its offer, then by
	// its `relay` messages (§10.5, trunk_relay.go).
	relay     atomic.Bool
	closeOnce sync.Once
	// replica is set on a trunk between two replicas of this node
	// (trunk_replica.go); users, on the host side, is the DID of the node
	// whose users the peer may announce.
	replica bool
	users   string
	// link is set on the owner's side of a replica trunk while it counts
	// as a local participant of the conference's link to its host.
	link atomic.Bool

	negMu sync.Mutex

	ctlMu sync.Mutex
	dc    *webrtc.DataChannel
	open  bool
	// relayTold, on the member side, is the permission last told to the
	// host: relayUnknown until the control channel is open.
	relayTold int32

	mu     sync.Mutex
	closed bool
	// restarting is set while the member restarts ICE (§10.6).
	restarting bool
	// serveMu makes one serve (trunk_demand.go) at a time bind slots: the
	// control channel's wants and the demand loop's retries both serve.
	serveMu sync.Mutex
	// Sending side: slots by MID, local tracks offered to the peer, and
	// what the peer wants of them.
	slots   map[string]*trunkSlot
	pending []*trunkSlot
	offered map[string]UpTrack
	sent    map[string]*trackCounter
	// Receiving side: what the peer sends on each slot, its tracks and
	// participants as they exist here, and the layers asked of it.
	rx     map[string]*rxSlot
	remote map[string]*upTrack
	people map[string]*remoteParticipant
	// waiting are participants the host announced whose join this member
	// node has not verified in its replica yet (spec/federation.md §7);
	// they are tried again when the conference's log changes.
	waiting map[string]Participant
	removed map[string]bool
	asked   map[string]layerSet
	// unmet are wants waiting for slots; growAsked when more slots of a
	// kind were last asked for (trunk_grow.go).
	unmet     map[string]layerSet
	growAsked map[webrtc.RTPCodecType]time.Time
	// wanted is the peer's last want per track offered to it; caps, the
	// highest layer of a track that fits the trunk's estimate, for the
	// tracks held back (trunk_cc.go).
	wanted map[string]layerSet
	caps   map[string]int

	// cc is the congestion control of this side's direction.
	cc *trunkCC
}

// trackCounter counts what of one track crossed this trunk, per layer:
// packets counts each sequence number once, resent the retransmissions that
// answered the peer's NACKs.
type trackCounter struct {
	packets [maxLayers]atomic.Uint64
	resent  [maxLayers]atomic.Uint64
	bytes   atomic.Uint64
}

// newTrunk creates the trunk of conference to peer and joins it to the
// conference. This file holds the connection's lifecycle: creation,
// negotiation, ICE restarts (§10.6) and teardown; trunk_control.go what
// crosses the control channel, trunk_demand.go the demand in both
// directions, trunk_rx.go the receiving slots, trunk_slot.go the sending
// ones, trunk_api.go the pion setup and trunk_metrics.go the counters.
func (ts *trunkSet) newTrunk(conference, peer string, member, relay bool) (*trunk, error) {
	api, err := ts.trunkAPI(member)
	if err != nil {
		return nil, fmt.Errorf("media: trunk api: %w", err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("media: trunk peer connection: %w", err)
	}
	t := &trunk{
		set: ts, conference: conference, peer: peer, member: member, relayKick: make(chan struct{}, 1),
		users: peer, replica: isReplicaPeer(peer),
		log: ts.log.With("conference", conference, "peer", peer), pc: pc, done: make(chan struct{}),
		slots: map[string]*trunkSlot{}, offered: map[string]UpTrack{}, sent: map[string]*trackCounter{},
		rx: map[string]*rxSlot{}, remote: map[string]*upTrack{}, people: map[string]*remoteParticipant{},
		waiting: map[string]Participant{}, removed: map[string]bool{}, asked: map[string]layerSet{},
		unmet: map[string]layerSet{}, growAsked: map[webrtc.RTPCodecType]time.Time{},
		wanted: map[string]layerSet{}, caps: map[string]int{},
	}
	est := ts.estimators.take(pc.ID())
	if ts.fullLayers {
		est = nil
	}
	t.cc = newTrunkCC(est, ts.ccMetrics, conference, peer)
	t.relay.Store(relay)
	ts.mu.Lock()
	if ts.closed {
		ts.mu.Unlock()
		_ = pc.Close()
		return nil, errors.New("media: SFU is shutting down")
	}
	if old := ts.trunks[trunkKey{conference, peer}]; old != nil {
		ts.mu.Unlock()
		old.close("replaced")
		ts.mu.Lock()
	}
	ts.trunks[trunkKey{conference, peer}] = t
	ts.active.Inc()
	ts.wg.Add(1)
	ts.mu.Unlock()

	pc.OnTrack(t.onTrack)
	pc.OnICEConnectionStateChange(t.onICEState)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed && !t.member {
			// The member restarts ICE before this; failed means it gave up.
			go t.close("connection failed")
		}
	})
	t.conf, _, _ = ts.sfu.router.join(conference, t, Participant{})
	go func() {
		defer ts.wg.Done()
		t.demandLoop()
	}()
	if member {
		ts.wg.Add(1)
		go func() {
			defer ts.wg.Done()
			t.relayLoop()
		}()
	}
	t.log.Info("trunk created", "member", member, "relay", relay)
	return t, nil
}

func (t *trunk) addSlot(sl *trunkSlot, tr *webrtc.RTPTransceiver) {
	sl.tr = tr
	t.mu.Lock()
	t.pending = append(t.pending, sl)
	t.mu.Unlock()
	if s := tr.Sender(); s != nil {
		go sl.readRTCP(s)
	}
}

// indexSlots keys the slots by MID once the local description assigned
// them.
func (t *trunk) indexSlots() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, sl := range t.pending {
		sl.mu.Lock()
		sl.mid = sl.tr.Mid()
		sl.mu.Unlock()
		t.slots[sl.mid] = sl
	}
	t.pending = nil
}

// openControl creates the control channel. Both sides create it as a
// pre-negotiated channel with id 0, so neither waits for the other (§10.4).
func (t *trunk) openControl() error {
	negotiated, id := true, uint16(0)
	dc, err := t.pc.CreateDataChannel(controlLabel, &webrtc.DataChannelInit{Negotiated: &negotiated, ID: &id})
	if err != nil {
		return fmt.Errorf("media: trunk control channel: %w", err)
	}
	t.ctlMu.Lock()
	t.dc = dc
	t.ctlMu.Unlock()
	dc.OnOpen(func() {
		t.ctlMu.Lock()
		t.open = true
		t.ctlMu.Unlock()
		t.sendState()
		t.restateRelay()
	})
	dc.OnClose(func() { go t.close("control channel closed") })
	dc.OnMessage(func(m webrtc.DataChannelMessage) { t.handleControl(m.Data) })
	return nil
}

// negotiate sends a non-trickle offer through the cascade and applies the
// answer; with restart it is an ICE restart on the same connection.
func (t *trunk) negotiate(ctx context.Context, restart bool) error {
	offer, err := t.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		return fmt.Errorf("media: trunk offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(t.pc)
	if err := t.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("media: trunk offer: %w", err)
	}
	t.indexSlots()
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	answer, err := t.set.sfu.opts.Cascade.Offer(ctx, t.conference, t.pc.LocalDescription().SDP)
	if err == nil && restart && !samePeer(remoteSDP(t.pc), answer) {
		err = errTrunkPeerChanged
	}
	if err != nil {
		if rb := t.pc.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); rb != nil {
			t.log.Debug("roll back trunk offer", "err", rb)
		}
		return fmt.Errorf("media: trunk offer to %s: %w", t.peer, err)
	}
	if err := t.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("media: trunk answer from %s: %w", t.peer, err)
	}
	return nil
}

// answer applies a member's ICE-restart offer to the existing connection.
func (t *trunk) answer(ctx context.Context, offerSDP string) (string, error) {
	if err := t.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return "", fmt.Errorf("media: trunk offer from %s: %w: %v", t.peer, ErrBadTrunkOffer, err)
	}
	if _, err := t.answeringSlots(); err != nil {
		return "", fmt.Errorf("media: trunk slot: %w", err)
	}
	return t.localAnswer(ctx)
}

func (t *trunk) localAnswer(ctx context.Context) (string, error) {
	answer, err := t.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("media: trunk answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(t.pc)
	if err := t.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("media: trunk answer: %w", err)
	}
	t.indexSlots()
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return t.pc.LocalDescription().SDP, nil
}

// onICEState restarts ICE from the member side when the path is lost
// (§10.6); the host waits for that restart.
func (t *trunk) onICEState(s webrtc.ICEConnectionState) {
	t.log.Debug("trunk ice state", "state", s.String())
	switch s {
	case webrtc.ICEConnectionStateDisconnected, webrtc.ICEConnectionStateFailed:
		if t.member && t.replica {
			// Between replicas a lost path is a dead owner, whose
			// conference moves: a new trunk finds its new owner, where
			// an ICE restart would only knock at the dead one
			// (trunk_replica.go).
			go t.close("owner replica unreachable")
			return
		}
		if t.member && t.startRestart() {
			t.set.wg.Add(1)
			go func() {
				defer t.set.wg.Done()
				t.restart()
			}()
		}
	case webrtc.ICEConnectionStateConnected:
		if t.member {
			// After a reconnection both sides resynchronise (§10.4).
			t.sendState()
		}
	}
}

// startRestart reports whether the caller is to restart ICE: no restart
// runs yet.
func (t *trunk) startRestart() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.restarting {
		return false
	}
	t.restarting = true
	return true
}

func (t *trunk) restart() {
	defer func() {
		t.mu.Lock()
		t.restarting = false
		t.mu.Unlock()
	}()
	for attempt := 1; attempt <= restartAttempts; attempt++ {
		if t.isClosed() {
			return
		}
		if s := t.pc.ICEConnectionState(); s == webrtc.ICEConnectionStateConnected || s == webrtc.ICEConnectionStateCompleted {
			return
		}
		t.log.Info("trunk ice restart", "attempt", attempt)
		ctx, cancel := context.WithTimeout(context.Background(), restartWait)
		t.negMu.Lock()
		err := t.negotiate(ctx, true)
		t.negMu.Unlock()
		cancel()
		if err == nil && t.waitConnected(restartWait) {
			t.sendState()
			return
		}
		if errors.Is(err, errTrunkPeerChanged) {
			t.log.Info("trunk host changed; setting up a new trunk", "err", err)
			break
		}
		if err != nil {
			t.log.Info("trunk ice restart failed", "attempt", attempt, "err", err)
		}
		select {
		case <-t.done:
			return
		case <-time.After(time.Duration(attempt) * 300 * time.Millisecond):
		}
	}
	t.close("ice restart failed")
}

func (t *trunk) waitConnected(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		switch t.pc.ICEConnectionState() {
		case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
			return true
		}
		select {
		case <-t.done:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

func (t *trunk) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// close tears the trunk down: the peer's tracks and participants disappear
// here, and the local tracks it was sending lose this sink.
func (t *trunk) close(reason string) {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		remote := make([]*upTrack, 0, len(t.remote))
		for _, u := range t.remote {
			remote = append(remote, u)
		}
		people := make([]*remoteParticipant, 0, len(t.people))
		for _, p := range t.people {
			people = append(people, p)
		}
		slots := make([]*trunkSlot, 0, len(t.slots))
		for _, s := range t.slots {
			slots = append(slots, s)
		}
		t.remote, t.people = map[string]*upTrack{}, map[string]*remoteParticipant{}
		t.mu.Unlock()
		close(t.done)
		for _, s := range slots {
			s.unbind()
		}
		for _, u := range remote {
			t.conf.unpublish(u)
		}
		for _, p := range people {
			t.conf.leave(p, nil)
		}
		t.conf.leave(t, nil)
		t.cc.close()
		if err := t.pc.Close(); err != nil {
			t.log.Debug("close trunk peer connection", "err", err)
		}
		t.set.removed(t)
		if t.link.Swap(false) {
			t.set.linkLeft(t.conference, false)
		}
		t.log.Info("trunk closed", "reason", reason)
	})
}

func (t *trunk) carriesIn(up UpTrack) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	u, ok := t.remote[up.ID()]
	return ok && UpTrack(u) == up
}
