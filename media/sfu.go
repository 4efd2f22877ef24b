package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Membership answers whether a local user may take part in a conference's
// media. cmd wires it to federation (a participant of the conference, the
// conference not ended).
//
// MayParticipate returns nil when the user may take part, an error wrapping
// ErrNotParticipant or ErrConferenceEnded when the user may not, and any
// other error when it cannot tell. Only the two refusals remove a connected
// user on Recheck; an error that cannot tell keeps them connected, so that a
// passing database outage does not empty every conference.
type Membership interface {
	MayParticipate(ctx context.Context, conference, user string) error
}

// Organisations names the institution of a participant of another node.
// The name a peer announces on a trunk is only that node's label: what
// clients see is the name this node gives it (spec/federation.md §2.1).
type Organisations interface {
	// OrganisationOf is this node's name for the institution of user (a
	// user ref), which its node announced as label.
	OrganisationOf(ctx context.Context, user, label string) string
}

// UserICEServers gives the ICE servers that belong to one user, such as a
// TURN server with credentials made for that user.
type UserICEServers interface {
	ICEServersFor(user string) []webrtc.ICEServer
}

// Refusals a Membership returns.
var (
	ErrNotParticipant  = errors.New("not a participant of the conference")
	ErrConferenceEnded = errors.New("conference ended")
)

// udpSocketBuffer is the kernel buffer asked for the shared media socket.
const udpSocketBuffer = 4 << 20

// Options configure an SFU.
type Options struct {
	Membership Membership
	Logger     *slog.Logger
	// UDPPort, when not 0, is the one UDP port all peer connections share;
	// 0 uses an ephemeral port per connection.
	UDPPort int
	// PublicIPs are announced as host candidates in place of the local
	// addresses (1:1 NAT).
	PublicIPs []string
	// ICEServers (STUN/TURN) are given to clients in `joined`.
	ICEServers []webrtc.ICEServer
	// UserICEServers, when set, adds servers for one user, such as the
	// embedded TURN server with that user's short-lived credentials.
	UserICEServers UserICEServers
	// Registry receives the SFU's metrics; may be nil.
	Registry prometheus.Registerer
	// IncludeLoopback also gathers loopback candidates, for tests and
	// single-host setups.
	IncludeLoopback bool
	// Organisations, when set, names the institution of the participants
	// that come over trunks; without it the name their node announced is
	// shown.
	Organisations Organisations
	// Cascade, when set, joins this SFU to the host's SFU for conferences
	// hosted on other nodes (spec/federation.md §10); without it only local
	// participants meet.
	Cascade Cascade
}

func (o Options) validate() error {
	if o.Membership == nil {
		return errors.New("media: Options.Membership is required")
	}
	if o.UDPPort < 0 || o.UDPPort > 65535 {
		return fmt.Errorf("media: Options.UDPPort %d is not a port", o.UDPPort)
	}
	for _, ip := range o.PublicIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("media: Options.PublicIPs: %q is not an IP address", ip)
		}
	}
	return nil
}

// SFU is a node's selective forwarding unit: it receives each local user's
// media once and forwards it to the other participants of the conference.
type SFU struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	router  *router
	pubAPI  *webrtc.API
	subAPI  *webrtc.API
	udp     io.Closer // the shared media socket's mux
	// out sends the shared socket's datagrams in batches (udpbatch.go);
	// nil without a shared socket.
	out *sendGroup
	// settings are kept for the trunks' API, which shares the UDP port and
	// candidates with clients but has its own timeouts (trunk.go).
	settings webrtc.SettingEngine
	trunks   *trunkSet

	mu      sync.Mutex
	closed  bool
	clients map[*client]struct{}
	wg      sync.WaitGroup
}

// New builds an SFU; with Options.UDPPort set it listens on that port.
func New(o Options) (*SFU, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registry)
	if err != nil {
		return nil, err
	}
	s := &SFU{opts: o, log: log.With("component", "media"), metrics: m, router: newRouter(), clients: make(map[*client]struct{})}

	se := webrtc.SettingEngine{LoggerFactory: pionLogs{s.log}}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(o.IncludeLoopback)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if len(o.PublicIPs) > 0 {
		se.SetNAT1To1IPs(o.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	if o.UDPPort != 0 {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{Port: o.UDPPort})
		if err != nil {
			return nil, fmt.Errorf("media: listen on UDP port %d: %w", o.UDPPort, err)
		}
		// Every participant's media shares this socket: bursts of keyframes
		// from many publishers must not overflow the kernel's default
		// buffer. The kernel caps the size at net.core.rmem_max/wmem_max.
		_ = conn.SetReadBuffer(udpSocketBuffer)
		_ = conn.SetWriteBuffer(udpSocketBuffer)
		bc, err := newBatchConn(conn, m)
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("media: UDP port %d: %w", o.UDPPort, err)
		}
		s.out = bc.out
		// Closing the mux closes the socket, without its reader taking
		// the closed socket for an error.
		mux := webrtc.NewICEUDPMux(se.LoggerFactory.NewLogger("ice"), bc)
		s.udp = mux
		se.SetICEUDPMux(mux)
	}

	pubEngine, pubInterceptors, err := newPublishEngine()
	if err != nil {
		s.closeUDP()
		return nil, fmt.Errorf("media: %w", err)
	}
	subEngine, subInterceptors, err := newSubscribeEngine()
	if err != nil {
		s.closeUDP()
		return nil, fmt.Errorf("media: %w", err)
	}
	s.settings = se
	if s.trunks, err = newTrunkSet(s, o.Registry); err != nil {
		s.closeUDP()
		return nil, err
	}
	s.pubAPI = webrtc.NewAPI(webrtc.WithMediaEngine(pubEngine), webrtc.WithInterceptorRegistry(pubInterceptors), webrtc.WithSettingEngine(se))
	s.subAPI = webrtc.NewAPI(webrtc.WithMediaEngine(subEngine), webrtc.WithInterceptorRegistry(subInterceptors), webrtc.WithSettingEngine(se))
	return s, nil
}

func (s *SFU) closeUDP() {
	if s.udp != nil {
		_ = s.udp.Close()
	}
}

func (s *SFU) newPeerConnection(api *webrtc.API) (*webrtc.PeerConnection, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	s.metrics.peerConnections.Inc()
	return pc, nil
}

// Close disconnects every client and releases the UDP port.
func (s *SFU) Close() error {
	s.mu.Lock()
	s.closed = true
	clients := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	for _, c := range clients {
		c.stop("")
	}
	s.trunks.close()
	s.wg.Wait()
	for _, c := range s.router.all() {
		c.speaker.stop()
	}
	if s.udp != nil {
		if err := s.udp.Close(); err != nil {
			return fmt.Errorf("media: close UDP port: %w", err)
		}
	}
	return nil
}

// ServeSignal upgrades to the signalling WebSocket for user in conference
// (spec/client-api.md §5). Authentication is the caller's; membership is
// checked here, before the upgrade.
func (s *SFU) ServeSignal(w http.ResponseWriter, r *http.Request, conference, user, displayName, organisation string) {
	log := s.log.With("conference", conference, "user", user)
	if err := s.opts.Membership.MayParticipate(r.Context(), conference, user); err != nil {
		if errors.Is(err, ErrNotParticipant) || errors.Is(err, ErrConferenceEnded) {
			http.Error(w, "not a participant of this conference", http.StatusForbidden)
			return
		}
		log.Warn("membership check failed", "err", err)
		http.Error(w, "membership cannot be checked now", http.StatusServiceUnavailable)
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		log.Debug("websocket upgrade failed", "err", err)
		return
	}
	ws.SetReadLimit(hardFrameLimit)

	c := s.newClient(conference, Participant{User: user, DisplayName: displayName, Organisation: organisation}, log)
	c.ws, c.outbox = ws, make(chan []byte, outboxSize)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.Close(websocket.StatusGoingAway, "shutting down")
		return
	}
	s.clients[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { defer loops.Done(); c.writeLoop(ctx) }()
	go func() { defer loops.Done(); c.keepalive(ctx) }()

	for {
		data, frameErr, err := readFrame(ctx, ws)
		if err != nil {
			break
		}
		if frameErr != nil {
			c.send(*frameErr)
			continue
		}
		m, decodeErr := decodeInbound(data)
		if decodeErr != nil {
			c.send(*decodeErr)
			continue
		}
		c.handle(m)
	}
	c.stop("")
	cancel()
	loops.Wait()
	_ = ws.CloseNow()
}

// writeLoop is the only writer of the WebSocket. After stop it flushes what
// is queued (such as `removed`) and closes the connection.
func (c *client) writeLoop(ctx context.Context) {
	write := func(data []byte) bool {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		defer cancel()
		return c.ws.Write(wctx, websocket.MessageText, data) == nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case data := <-c.outbox:
			if !write(data) {
				go c.stop("")
			}
		case <-c.closing:
			for drained := false; !drained; {
				select {
				case data := <-c.outbox:
					write(data)
				default:
					drained = true
				}
			}
			c.outMu.Lock()
			reason := c.reason
			c.outMu.Unlock()
			code := websocket.StatusNormalClosure
			switch reason {
			case "":
			case ReasonRestart:
				// 1012: the client reconnects at once and lands on
				// another replica (docs/replicas.md, "Drain").
				code, reason = websocket.StatusServiceRestart, "service restart"
			default:
				code = websocket.StatusPolicyViolation
			}
			_ = c.ws.Close(code, reason)
			return
		}
	}
}

// keepalive pings every pingInterval (spec/client-api.md §5.1); a client
// that does not answer is disconnected.
func (c *client) keepalive(ctx context.Context) {
	ticker := time.NewTicker(pingInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.closing:
			return
		case <-ticker.C:
		}
		pctx, cancel := context.WithTimeout(ctx, pingInterval)
		err := c.ws.Ping(pctx)
		cancel()
		if err != nil {
			go c.stop("")
			return
		}
	}
}

// reasonReplaced is the `removed` reason of a session that a newer session
// of the same user took over (spec/client-api.md §5.3).
const reasonReplaced = "replaced"

// takeOver closes every other session of c's user in c's conference on this
// node: the same person coming back after a reload or a crash of their
// browser takes over their own place at once, rather than wait for the
// stale session to time out, and the others see them once, not twice
// (spec/client-api.md §5.2 `join`). The old session's tracks leave the
// conference before the new one joins it.
func (s *SFU) takeOver(c *client) {
	s.mu.Lock()
	var old []*client
	for o := range s.clients {
		if o != c && o.conferenceID == c.conferenceID && o.me.User == c.me.User {
			old = append(old, o)
		}
	}
	s.mu.Unlock()
	for _, o := range old {
		o.log.Info("media session taken over by a new one")
		o.stop(reasonReplaced)
	}
}

// Recheck re-verifies the membership of every connected user of conference,
// in the background. Users refused are sent `removed` with reason "ended" or
// "removed" and disconnected; their tracks stop reaching others at once.
// Participants a host announced before this node verified their join are
// tried again.
func (s *SFU) Recheck(conference string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		for _, d := range s.router.downs(conference) {
			if r, ok := d.(*remoteParticipant); ok {
				r.recheck(conference)
				continue
			}
			if t, ok := d.(*trunk); ok {
				t.admitWaiting()
				continue
			}
			c, ok := d.(*client)
			if !ok {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := s.opts.Membership.MayParticipate(ctx, conference, c.me.User)
			cancel()
			switch {
			case err == nil:
			case errors.Is(err, ErrConferenceEnded):
				c.stop("ended")
			case errors.Is(err, ErrNotParticipant):
				c.stop("removed")
			default:
				s.log.Warn("membership recheck failed; user kept", "conference", conference, "user", c.me.User, "err", err)
			}
		}
	}()
}
