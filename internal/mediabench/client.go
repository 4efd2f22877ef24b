package mediabench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// client is one synthetic participant: a signalling WebSocket and the two
// peer connections of spec/client-api.md §5.
type client struct {
	p Participant
	// pubAPI and subAPI each have their own socket, as a browser's peer
	// connections do: a node with one shared UDP port tells its peer
	// connections apart by the remote address.
	pubAPI, subAPI *webrtc.API
	udp            []io.Closer // the sockets' muxes
	clock          clock
	win            *window
	ws             *websocket.Conn
	pub            *webrtc.PeerConnection
	sub            *webrtc.PeerConnection

	joined    chan struct{}
	published chan struct{}
	pubUp     chan struct{}
	// fail is shared by the run's clients: the first error ends the run.
	fail        chan error
	joinedNS    int64
	wg          sync.WaitGroup
	sentPackets atomic.Int64

	// room is the LiveKit SDK's connection of a LiveKit participant
	// (lkclient.go), which then has no ws, pub or sub of its own.
	room *lksdk.Room

	mu     sync.Mutex
	user   string
	tracks []*localTrack
	subs   map[string]*subscription // by the SFU's track id

	// Failover (failover.go): once armed, a broken signalling connection
	// makes the client reconnect instead of failing the run. A session is
	// one connection; its context ends its goroutines.
	armed      atomic.Bool
	httpClient *http.Client
	runCtx     context.Context
	expected   int
	recon      sync.WaitGroup
	sessCancel context.CancelFunc
	sessDone   <-chan struct{}
	cutNS      int64 // first cut, clock time; 0 if none
	againNS    int64 // every expected track flowing again after the last cut
}

func newClient(p Participant, pubAPI, subAPI *webrtc.API, c clock, w *window, fail chan error) *client {
	return &client{p: p, pubAPI: pubAPI, subAPI: subAPI, clock: c, win: w, joined: make(chan struct{}), published: make(chan struct{}),
		pubUp: make(chan struct{}), fail: fail, subs: map[string]*subscription{}}
}

// connect dials the signalling WebSocket, joins and, if the participant
// publishes, starts sending; it returns once joined and, for a publisher,
// once the publish connection is up.
func (c *client) connect(ctx context.Context, httpClient *http.Client, limit time.Duration) error {
	if c.p.Kind == KindLiveKit {
		return c.connectLiveKit(ctx, limit)
	}
	c.httpClient, c.runCtx = httpClient, ctx
	return c.connectTo(ctx, c.p.URL, limit)
}

// connectTo is connect at url, in a new session.
func (c *client) connectTo(ctx context.Context, url string, limit time.Duration) error {
	ctx, endSession := context.WithCancel(ctx)
	c.mu.Lock()
	c.sessCancel, c.sessDone = endSession, ctx.Done()
	c.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{
		HTTPClient: c.httpClient,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + c.p.Token}},
	})
	if err != nil {
		if resp != nil {
			return fmt.Errorf("%s: signalling: HTTP %d: %w", c.p.Name, resp.StatusCode, err)
		}
		return fmt.Errorf("%s: signalling: %w", c.p.Name, err)
	}
	ws.SetReadLimit(readLimit)
	pub, err := c.pubAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		_ = ws.CloseNow()
		return fmt.Errorf("%s: publish connection: %w", c.p.Name, err)
	}
	sub, err := c.subAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		_ = ws.CloseNow()
		_ = pub.Close()
		return fmt.Errorf("%s: subscribe connection: %w", c.p.Name, err)
	}
	c.mu.Lock()
	c.ws, c.pub, c.sub = ws, pub, sub
	c.mu.Unlock()
	c.pub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			closeOnce(c.pubUp)
		}
	})
	c.sub.OnTrack(c.onTrack)
	c.wg.Go(func() { c.readLoop(ctx) })

	c.joinedNS = c.clock.now()
	if err := c.send(ctx, map[string]any{"type": "join"}); err != nil {
		return err
	}
	if err := c.wait(dctx, c.joined, "joined"); err != nil {
		return err
	}
	if !c.p.Audio && !c.p.Video {
		return nil
	}
	if err := c.publish(ctx); err != nil {
		return err
	}
	if err := c.wait(dctx, c.published, "publish_answer"); err != nil {
		return err
	}
	return c.wait(dctx, c.pubUp, "the publish connection to connect")
}

func (c *client) wait(ctx context.Context, ch <-chan struct{}, what string) error {
	select {
	case <-ch:
		return nil
	case err := <-c.fail:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for %s: %w", c.p.Name, what, ctx.Err())
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// failed reports the first error that ends the client's signalling.
func (c *client) failed(err error) {
	select {
	case c.fail <- err:
	default:
	}
}

func (c *client) send(ctx context.Context, m any) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("%s: %w", c.p.Name, err)
	}
	if err := c.ws.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("%s: signalling write: %w", c.p.Name, err)
	}
	return nil
}

// serverMessage holds the fields of the server messages the client acts on.
type serverMessage struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
	PC   string `json:"pc"`
	// Candidate is kept raw: its shape is the browser's RTCIceCandidateInit.
	Candidate json.RawMessage `json:"candidate"`
	You       struct {
		User string `json:"user"`
	} `json:"you"`
	Tracks []trackInfo `json:"tracks"`
	trackInfo
	Code    string `json:"code"`
	Message string `json:"message"`
}

type trackInfo struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
	Kind  string `json:"kind"`
}

func (c *client) readLoop(ctx context.Context) {
	for range maxSignalFrames {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
			case c.armed.Load():
				c.cut(c.runCtx)
			default:
				c.failed(fmt.Errorf("%s: signalling read: %w", c.p.Name, err))
			}
			return
		}
		var m serverMessage
		if err := json.Unmarshal(data, &m); err != nil {
			c.failed(fmt.Errorf("%s: server sent a frame that is not JSON: %w", c.p.Name, err))
			return
		}
		if err := c.handle(ctx, m); err != nil {
			c.failed(err)
			return
		}
	}
	c.failed(fmt.Errorf("%s: more than %d signalling messages", c.p.Name, maxSignalFrames))
}

func (c *client) handle(ctx context.Context, m serverMessage) error {
	switch m.Type {
	case "joined":
		c.mu.Lock()
		c.user = m.You.User
		c.mu.Unlock()
		for _, t := range m.Tracks {
			if err := c.trackAnnounced(ctx, t); err != nil {
				return err
			}
		}
		closeOnce(c.joined)
	case "track_added":
		return c.trackAnnounced(ctx, m.trackInfo)
	case "publish_answer":
		if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
			return fmt.Errorf("%s: publish answer: %w", c.p.Name, err)
		}
		closeOnce(c.published)
	case "subscribe_offer":
		return c.answer(ctx, m.SDP)
	case "candidate":
		var init webrtc.ICECandidateInit
		if err := json.Unmarshal(m.Candidate, &init); err != nil {
			return fmt.Errorf("%s: server candidate: %w", c.p.Name, err)
		}
		pc := c.pub
		if m.PC == "subscribe" {
			pc = c.sub
		}
		if err := pc.AddICECandidate(init); err != nil {
			return fmt.Errorf("%s: server candidate: %w", c.p.Name, err)
		}
	case "error":
		return fmt.Errorf("%s: server refused a message: %s: %s", c.p.Name, m.Code, m.Message)
	}
	return nil
}

// trackAnnounced subscribes to every track of another participant.
func (c *client) trackAnnounced(ctx context.Context, t trackInfo) error {
	c.mu.Lock()
	own := t.Owner == c.user
	if !own && c.p.Subscribe {
		if _, ok := c.subs[t.ID]; !ok {
			c.subs[t.ID] = &subscription{owner: t.Owner, kind: t.Kind, announcedNS: c.clock.now()}
		}
	}
	c.mu.Unlock()
	if own || !c.p.Subscribe {
		return nil
	}
	return c.send(ctx, map[string]any{"type": "subscribe", "track": t.ID})
}

// answer completes ICE gathering before answering: the SFU is on loopback,
// so gathering is immediate and trickling would only add messages.
func (c *client) answer(ctx context.Context, offer string) error {
	if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fmt.Errorf("%s: subscribe offer: %w", c.p.Name, err)
	}
	ans, err := c.sub.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("%s: subscribe answer: %w", c.p.Name, err)
	}
	gathered := webrtc.GatheringCompletePromise(c.sub)
	if err := c.sub.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("%s: subscribe answer: %w", c.p.Name, err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.send(ctx, map[string]any{"type": "subscribe_answer", "sdp": c.sub.LocalDescription().SDP})
}

// onTrack reads one subscribed track until its connection closes.
func (c *client) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	c.mu.Lock()
	s, ok := c.subs[tr.ID()]
	if !ok {
		s = &subscription{kind: tr.Kind().String(), announcedNS: c.clock.now()}
		c.subs[tr.ID()] = s
	}
	c.mu.Unlock()
	c.readTrack(tr, s)
}

// readTrack records every packet of a subscribed track until its
// connection closes.
func (c *client) readTrack(tr *webrtc.TrackRemote, s *subscription) {
	parse := parseAudioPayload
	if tr.Kind() == webrtc.RTPCodecTypeVideo {
		parse = parseVideoPayload
	}
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		at := c.clock.now()
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		p, err := parse(pkt.Payload)
		if err != nil {
			continue
		}
		p.size = len(pkt.Payload)
		if !exact(tr.Kind().String(), pkt.Payload, p) {
			s.mu.Lock()
			s.mismatched++
			s.mu.Unlock()
		}
		s.record(p, at, c.win)
	}
}

// close ends the client's connections and waits for its goroutines; the
// run's context has ended, so a reconnection stops first.
func (c *client) close() {
	c.recon.Wait()
	if c.room != nil {
		c.room.Disconnect()
	}
	if c.ws != nil {
		_ = c.ws.CloseNow()
	}
	if c.pub != nil {
		_ = c.pub.Close()
	}
	if c.sub != nil {
		_ = c.sub.Close()
	}
	for _, u := range c.udp {
		_ = u.Close()
	}
	c.wg.Wait()
}
