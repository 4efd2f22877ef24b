package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Cascade is how the SFU reaches the host node of a conference hosted
// elsewhere (spec/federation.md §10). cmd wires it to federation, which signs
// the exchange; media never sees keys or trust entries.
type Cascade interface {
	// Host returns the DID of the node hosting conference, or "" when this
	// node hosts it.
	Host(ctx context.Context, conference string) (string, error)
	// Offer sends a trunk offer to the host and returns its answer.
	Offer(ctx context.Context, conference, sdp string) (answer string, err error)
	// MayRelay reports whether this node lets the host of conference
	// relay its users' media to the conference's other nodes (its trust
	// entry for the host, may_relay_media). A live trunk asks again every
	// relayCheckInterval and tells the host of a change (§10.5).
	MayRelay(ctx context.Context, conference string) (bool, error)
}

// ErrBadTrunkOffer is wrapped by AcceptTrunk when the offer cannot be
// answered as a trunk (malformed SDP, wrong media sections).
var ErrBadTrunkOffer = errors.New("not an acceptable trunk offer")

const (
	// Every trunk pre-negotiates this many slots per direction, so that a
	// track crossing needs a control message, not an SDP round trip through
	// federation (§10.3).
	trunkAudioSlots = 8
	trunkVideoSlots = 16
	// maxTrunkSections bounds the media sections a trunk offer may carry:
	// the slots of both kinds once grown to their bound, and the data
	// channel.
	maxTrunkSections = 2*maxTrunkSlots + 1
	// trunkGrace keeps a member's trunk open after its last local client
	// left, so a reload does not tear the cascade down and set it up again.
	trunkGrace = 3 * time.Second
	// demandInterval is how often a trunk aggregates its local subscribers'
	// needs into `want` messages: bursts of subscriptions cost one message.
	demandInterval = 100 * time.Millisecond
	// ratesEvery is how many demand ticks pass between two rate reports.
	ratesEvery = 5
	// restartAttempts bounds the ICE restarts tried before a trunk is torn
	// down and set up afresh.
	restartAttempts = 3
	restartWait     = 4 * time.Second
	controlLabel    = "entente-control"
)

type trunkKey struct{ conference, peer string }

// trunkSet holds the SFU's trunks: the member side of conferences hosted
// elsewhere, and the host side of conferences hosted here.
type trunkSet struct {
	sfu *SFU
	log *slog.Logger

	apiOnce sync.Once
	// hostAPI serves the trunks of conferences hosted here, on the
	// node's media port; memberAPI those this node opens to other hosts.
	hostAPI, memberAPI *webrtc.API
	apiErr             error
	// net replaces the network the trunks use; tests cut it.
	net transport.Net
	// fullLayers, set by tests of layer choice, keeps the trunks from
	// holding layers back: on a loaded machine the estimator can take the
	// scheduler's delays on loopback for a queue.
	fullLayers bool

	trunkMetrics
	estimators estimatorRegistry

	mu     sync.Mutex
	closed bool
	trunks map[trunkKey]*trunk
	links  map[string]*memberLink
	wg     sync.WaitGroup
	grace  time.Duration
}

// memberLink is this node's membership of a conference hosted elsewhere:
// how many local clients are in its media, and the trunk they share.
type memberLink struct {
	conference string
	// clients counts the local clients and, on the owner replica, the
	// trunks of the other replicas (trunk_replica.go); people only the
	// local clients.
	clients int
	people  int
	trunk   *trunk
	opening bool
	local   bool
	idle    *time.Timer
	cancel  context.CancelFunc
}

func newTrunkSet(s *SFU, reg prometheus.Registerer) (*trunkSet, error) {
	ts := &trunkSet{
		sfu: s, log: s.log.With("part", "trunk"),
		trunks: make(map[trunkKey]*trunk), links: make(map[string]*memberLink), grace: trunkGrace,
	}
	var err error
	if ts.trunkMetrics, err = newTrunkMetrics(reg); err != nil {
		return nil, err
	}
	return ts, nil
}

// localJoined runs when a local client joins a conference's media: the first
// one opens the trunk to the host when the conference is hosted elsewhere.
func (ts *trunkSet) localJoined(conference string) { ts.linkJoined(conference, true) }

// linkJoined counts a local client (person) or another replica's trunk in
// the conference's link to its host.
func (ts *trunkSet) linkJoined(conference string, person bool) {
	if ts.sfu.opts.Cascade == nil {
		return
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return
	}
	l, ok := ts.links[conference]
	if !ok {
		l = &memberLink{conference: conference}
		ts.links[conference] = l
	}
	l.clients++
	if person {
		l.people++
		ts.countLocked(l)
	}
	if l.idle != nil {
		l.idle.Stop()
		l.idle = nil
	}
	if l.trunk == nil && !l.opening && !l.local {
		ts.startOpen(l, 0)
	}
}

// localLeft runs when a local client leaves; the trunk closes trunkGrace
// after the last one.
func (ts *trunkSet) localLeft(conference string) { ts.linkLeft(conference, true) }

func (ts *trunkSet) linkLeft(conference string, person bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	l, ok := ts.links[conference]
	if !ok {
		return
	}
	if person {
		l.people--
		ts.countLocked(l)
	}
	if l.clients--; l.clients > 0 {
		return
	}
	l.idle = time.AfterFunc(ts.grace, func() {
		ts.mu.Lock()
		if l.clients > 0 || ts.links[conference] != l {
			ts.mu.Unlock()
			return
		}
		delete(ts.links, conference)
		t := l.trunk
		if l.cancel != nil {
			l.cancel()
		}
		ts.mu.Unlock()
		if t != nil {
			t.close("no local participant left")
		}
	})
}

// startOpen opens the member side of a trunk in the background, retrying
// while local clients remain. Called with ts.mu held.
func (ts *trunkSet) startOpen(l *memberLink, delay time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	l.opening, l.cancel = true, cancel
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		defer cancel()
		for attempt := 0; ; attempt++ {
			if delay > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(delay):
				}
			}
			t, local, err := ts.open(ctx, l.conference)
			ts.mu.Lock()
			if err == nil && !local && (ts.closed || ts.links[l.conference] != l) {
				ts.mu.Unlock()
				t.close("conference left while opening")
				return
			}
			if err == nil || ctx.Err() != nil {
				l.opening, l.trunk, l.local = false, t, local
				ts.mu.Unlock()
				return
			}
			ts.mu.Unlock()
			ts.log.Warn("trunk to host failed; retrying", "conference", l.conference, "attempt", attempt+1, "err", err)
			delay = min(time.Duration(attempt+1)*time.Second, 10*time.Second)
		}
	}()
}

// open sets up the member side: pool, control channel, non-trickle offer
// through Cascade.Offer, answer applied.
func (ts *trunkSet) open(ctx context.Context, conference string) (*trunk, bool, error) {
	host, err := ts.sfu.opts.Cascade.Host(ctx, conference)
	if err != nil {
		return nil, false, fmt.Errorf("host of conference %s: %w", conference, err)
	}
	if host == "" {
		return nil, true, nil
	}
	t, err := ts.newTrunk(conference, host, true, true)
	if err != nil {
		return nil, false, err
	}
	for i := range trunkAudioSlots + trunkVideoSlots {
		kind := webrtc.RTPCodecTypeAudio
		if i >= trunkAudioSlots {
			kind = webrtc.RTPCodecTypeVideo
		}
		sl := newTrunkSlot(t, kind)
		tr, err := t.pc.AddTransceiverFromTrack(sl, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
		if err != nil {
			t.close("setup failed")
			return nil, false, fmt.Errorf("trunk transceiver: %w", err)
		}
		t.addSlot(sl, tr)
	}
	if err := t.openControl(); err != nil {
		t.close("setup failed")
		return nil, false, err
	}
	if err := t.negotiate(ctx, false); err != nil {
		t.close("setup failed")
		return nil, false, err
	}
	return t, false, nil
}

// AcceptTrunk answers a member node's trunk offer for a conference hosted
// here (spec/federation.md §10.2). peer is the member's DID, authenticated by
// federation; relay is the member's permission to forward its participants'
// media to other member nodes. A second offer from the same peer for the
// same conference is an ICE restart and is answered on the same connection,
// unless it comes with another DTLS certificate: a new trunk then replaces
// the old.
func (s *SFU) AcceptTrunk(ctx context.Context, conference, peer, offerSDP string, relay bool) (string, error) {
	if _, ok := ReplicaOf(peer); ok {
		return "", fmt.Errorf("media: trunk peer %q: %w", peer, ErrBadTrunkOffer)
	}
	return s.acceptTrunk(ctx, trunkPeer{conference: conference, name: peer, users: peer, relay: relay}, offerSDP)
}

// trunkPeer is who offers a trunk: its name in the trunk set, whose
// participants it may announce (users of the node with that DID), and its
// permission to have its media relayed.
type trunkPeer struct {
	conference, name, users string
	relay, replica          bool
}

func (s *SFU) acceptTrunk(ctx context.Context, from trunkPeer, offerSDP string) (string, error) {
	ts := s.trunks
	conference, peer := from.conference, from.name
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(offerSDP); err != nil {
		return "", fmt.Errorf("media: trunk offer from %s: %w: %v", peer, ErrBadTrunkOffer, err)
	}
	if n := len(parsed.MediaDescriptions); n == 0 || n > maxTrunkSections {
		return "", fmt.Errorf("media: trunk offer from %s has %d media sections: %w", peer, n, ErrBadTrunkOffer)
	}
	ts.mu.Lock()
	closed := ts.closed
	existing := ts.trunks[trunkKey{conference, peer}]
	ts.mu.Unlock()
	if closed {
		return "", errors.New("media: SFU is shutting down")
	}
	if existing != nil && !samePeer(remoteSDP(existing.pc), offerSDP) {
		// A new member process (or a member that set up afresh after
		// this end changed): a new trunk, not an ICE restart.
		existing = nil
	}
	if existing != nil {
		answer, err := existing.answer(ctx, offerSDP)
		if err != nil {
			existing.close("restart offer refused")
			return "", err
		}
		return answer, nil
	}
	t, err := ts.newTrunk(conference, peer, false, from.relay)
	if err != nil {
		return "", err
	}
	t.users = from.users
	if from.replica {
		t.holdLink()
	}
	if err := t.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		t.close("bad offer")
		return "", fmt.Errorf("media: trunk offer from %s: %w: %v", peer, ErrBadTrunkOffer, err)
	}
	added, err := t.answeringSlots()
	if err != nil {
		t.close("setup failed")
		return "", fmt.Errorf("media: trunk slot: %w", err)
	}
	if added == 0 {
		t.close("bad offer")
		return "", fmt.Errorf("media: trunk offer from %s has no media slots: %w", peer, ErrBadTrunkOffer)
	}
	if err := t.openControl(); err != nil {
		t.close("setup failed")
		return "", err
	}
	answer, err := t.localAnswer(ctx)
	if err != nil {
		t.close("setup failed")
		return "", err
	}
	return answer, nil
}

func (ts *trunkSet) close() {
	ts.mu.Lock()
	ts.closed = true
	trunks := make([]*trunk, 0, len(ts.trunks))
	for _, t := range ts.trunks {
		trunks = append(trunks, t)
	}
	for _, l := range ts.links {
		if l.cancel != nil {
			l.cancel()
		}
		if l.idle != nil {
			l.idle.Stop()
		}
	}
	ts.links = map[string]*memberLink{}
	ts.mu.Unlock()
	for _, t := range trunks {
		t.close("shutting down")
	}
	ts.wg.Wait()
}

// removed forgets t; on the member side, a trunk that died while local
// clients remain is set up afresh.
func (ts *trunkSet) removed(t *trunk) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	key := trunkKey{t.conference, t.peer}
	if ts.trunks[key] == t {
		delete(ts.trunks, key)
		ts.active.Dec()
	}
	if !t.member || ts.closed {
		return
	}
	if l, ok := ts.links[t.conference]; ok && l.trunk == t {
		l.trunk = nil
		if l.clients > 0 && !l.opening {
			ts.startOpen(l, time.Second)
		}
	}
}

// originOf returns the trunk a conference's track came in on, nil for a
// local publisher's track.
func (ts *trunkSet) originOf(conference string, up UpTrack) *trunk {
	ts.mu.Lock()
	trunks := make([]*trunk, 0, len(ts.trunks))
	for k, t := range ts.trunks {
		if k.conference == conference {
			trunks = append(trunks, t)
		}
	}
	ts.mu.Unlock()
	for _, t := range trunks {
		if t.carriesIn(up) {
			return t
		}
	}
	return nil
}
