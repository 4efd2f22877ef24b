package replicatest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// A Participant is one synthetic client of a conference speaking the media
// signalling of spec/client-api.md §5 over a real WebSocket and real pion
// peer connections. It publishes one Opus track whose packets carry known
// payloads, subscribes to everyone else's tracks, records what it receives
// byte for byte, and reconnects by itself when its WebSocket ends, as the
// web client does: at once after a 1012 (service restart), else with a
// short backoff.
type Participant struct {
	Name  string
	URL   string // wss://…/api/v1/conferences/{id}/media
	Token string
	HTTP  *http.Client

	mu       sync.Mutex
	track    *webrtc.TrackLocalStaticRTP
	seq      int
	sentAt   []time.Time // by sequence number
	received []Packet
	signals  []map[string]any
	closes   []int // WebSocket close codes seen
	sessions int
	lastErr  error

	stop context.CancelFunc
	done chan struct{}
}

// Packet is one RTP payload received from another participant.
type Packet struct {
	From    string
	Seq     int
	Payload []byte
	At      time.Time
}

// maxRecorded bounds what a Participant keeps.
const maxRecorded = 50000

// Payload is the exact payload of name's packet seq: an Opus TOC byte
// (config 31, stereo, one frame) and the text "name:seq".
func Payload(name string, seq int) []byte {
	return append([]byte{0xfc}, fmt.Sprintf("%s:%08d", name, seq)...)
}

func parsePayload(b []byte) (string, int, bool) {
	if len(b) < 2 || b[0] != 0xfc {
		return "", 0, false
	}
	name, num, ok := strings.Cut(string(b[1:]), ":")
	if !ok {
		return "", 0, false
	}
	seq, err := strconv.Atoi(num)
	if err != nil {
		return "", 0, false
	}
	return name, seq, true
}

// Start connects and keeps the participant in the conference until Close.
func (p *Participant) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.stop, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		var send sync.WaitGroup
		send.Go(func() { p.sendLoop(ctx) })
		p.connectLoop(ctx)
		send.Wait()
	}()
}

// Close leaves and waits for the participant's goroutines.
func (p *Participant) Close() {
	if p.stop != nil {
		p.stop()
		<-p.done
	}
}

func (p *Participant) connectLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		code, err := p.session(ctx)
		p.mu.Lock()
		if code != 0 {
			p.closes = append(p.closes, code)
		}
		p.lastErr = err
		p.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		wait := backoff
		if code == int(websocket.StatusServiceRestart) {
			wait = 0
			backoff = 100 * time.Millisecond
		} else {
			backoff = min(2*backoff, time.Second)
		}
		if ctxSleep(ctx, wait) != nil {
			return
		}
	}
}

// sendLoop sends a packet every 20 ms on whatever track is current.
func (p *Participant) sendLoop(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		track := p.track
		seq := p.seq
		if track != nil && len(p.sentAt) < maxRecorded {
			p.seq++
			p.sentAt = append(p.sentAt, time.Now())
		}
		p.mu.Unlock()
		if track == nil || seq >= maxRecorded {
			continue
		}
		_ = track.WriteRTP(&rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(seq), Timestamp: uint32(seq * 960), SSRC: 1},
			Payload: Payload(p.Name, seq),
		})
	}
}

// serverMessage holds what the participant reads of the server's messages.
type serverMessage struct {
	Type      string          `json:"type"`
	SDP       string          `json:"sdp"`
	PC        string          `json:"pc"`
	Candidate json.RawMessage `json:"candidate"`
	You       struct {
		User string `json:"user"`
	} `json:"you"`
	Tracks []struct {
		ID    string `json:"id"`
		Owner string `json:"owner"`
	} `json:"tracks"`
	ID    string `json:"id"`
	Owner string `json:"owner"`
	Code  string `json:"code"`
	Msg   string `json:"message"`
}

// session runs one signalling connection until it ends, and returns its
// close code (0 when none was received).
func (p *Participant) session(ctx context.Context) (code int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	ws, _, err := websocket.Dial(dctx, p.URL, &websocket.DialOptions{
		HTTPClient: p.HTTP, HTTPHeader: http.Header{"Authorization": {"Bearer " + p.Token}},
	})
	dcancel()
	if err != nil {
		return 0, fmt.Errorf("%s: dial: %w", p.Name, err)
	}
	defer ws.CloseNow()
	defer func() {
		if code == 0 && err != nil {
			code = closeStatus(ctx, ws)
		}
	}()
	ws.SetReadLimit(1 << 20)
	api, err := newAPI()
	if err != nil {
		return 0, err
	}
	pub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	sub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	defer func() {
		p.mu.Lock()
		p.track = nil
		p.mu.Unlock()
	}()
	var wmu sync.Mutex
	send := func(m any) error {
		b, _ := json.Marshal(m)
		wmu.Lock()
		defer wmu.Unlock()
		return ws.Write(ctx, websocket.MessageText, b)
	}
	sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { p.readTrack(tr) })
	var me string
	subscribed := map[string]bool{}
	subscribe := func(id, owner string) error {
		if owner == me || subscribed[id] {
			return nil
		}
		subscribed[id] = true
		return send(map[string]any{"type": "subscribe", "track": id})
	}
	if err := send(map[string]any{"type": "join"}); err != nil {
		return 0, err
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return int(websocket.CloseStatus(err)), fmt.Errorf("%s: read: %w", p.Name, err)
		}
		var m serverMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return 0, fmt.Errorf("%s: not JSON: %w", p.Name, err)
		}
		switch m.Type {
		case "joined":
			me = m.You.User
			p.mu.Lock()
			p.sessions++
			p.mu.Unlock()
			for _, t := range m.Tracks {
				if err := subscribe(t.ID, t.Owner); err != nil {
					return 0, err
				}
			}
			if err := p.publish(ctx, pub, send); err != nil {
				return 0, err
			}
		case "track_added":
			if err := subscribe(m.ID, m.Owner); err != nil {
				return 0, err
			}
		case "publish_answer":
			if err := pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
				return 0, fmt.Errorf("%s: publish answer: %w", p.Name, err)
			}
		case "subscribe_offer":
			if err := answer(ctx, sub, m.SDP, send); err != nil {
				return 0, err
			}
		case "candidate":
			var init webrtc.ICECandidateInit
			if json.Unmarshal(m.Candidate, &init) == nil {
				pc := pub
				if m.PC == "subscribe" {
					pc = sub
				}
				_ = pc.AddICECandidate(init)
			}
		case "signal":
			var sig map[string]any
			_ = json.Unmarshal(data, &sig)
			p.mu.Lock()
			if len(p.signals) < maxRecorded {
				p.signals = append(p.signals, sig)
			}
			p.mu.Unlock()
		case "error":
			return 0, fmt.Errorf("%s: server refused: %s: %s", p.Name, m.Code, m.Msg)
		}
	}
}

// closeStatus is the code the server closes ws with, after the session
// failed otherwise: a server that is going away may refuse a request or
// break a write just before its close frame arrives. -1: no close frame
// within a few seconds.
func closeStatus(ctx context.Context, ws *websocket.Conn) int {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			return int(websocket.CloseStatus(err))
		}
	}
}

// publish offers one Opus track; the send loop writes to it once the
// publish connection is up.
func (p *Participant) publish(ctx context.Context, pub *webrtc.PeerConnection, send func(any) error) error {
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "replicatest")
	if err != nil {
		return err
	}
	sender, err := pub.AddTrack(track)
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	pub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			p.mu.Lock()
			p.track = track
			p.mu.Unlock()
		}
	})
	offer, err := pub.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pub)
	if err := pub.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	mid := ""
	for _, tx := range pub.GetTransceivers() {
		if tx.Sender() == sender {
			mid = tx.Mid()
		}
	}
	return send(map[string]any{"type": "publish_offer", "sdp": pub.LocalDescription().SDP,
		"tracks": []map[string]any{{"mid": mid, "kind": "audio", "source": "microphone"}}})
}

func answer(ctx context.Context, sub *webrtc.PeerConnection, offer string, send func(any) error) error {
	if err := sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fmt.Errorf("subscribe offer: %w", err)
	}
	ans, err := sub.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(sub)
	if err := sub.SetLocalDescription(ans); err != nil {
		return err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	return send(map[string]any{"type": "subscribe_answer", "sdp": sub.LocalDescription().SDP})
}

func (p *Participant) readTrack(tr *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		from, seq, ok := parsePayload(pkt.Payload)
		if !ok {
			from = "?"
		}
		p.mu.Lock()
		if len(p.received) < maxRecorded {
			p.received = append(p.received, Packet{From: from, Seq: seq, Payload: bytes.Clone(pkt.Payload), At: time.Now()})
		}
		p.mu.Unlock()
	}
}

func newAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Received returns a copy of the packets received so far.
func (p *Participant) Received() []Packet {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Packet(nil), p.received...)
}

// ReceivedFromSince reports the first packet from another participant sent
// at or after t (by its sender's clock), if any arrived.
func (p *Participant) ReceivedFromSince(from *Participant, t time.Time) (Packet, bool) {
	first := from.SeqAt(t)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pk := range p.received {
		if pk.From == from.Name && pk.Seq >= first {
			return pk, true
		}
	}
	return Packet{}, false
}

// SeqAt is the first sequence number sent at or after t.
func (p *Participant) SeqAt(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, at := range p.sentAt {
		if !at.Before(t) {
			return i
		}
	}
	return len(p.sentAt)
}

// Signals returns a copy of the `signal` messages received.
func (p *Participant) Signals() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.signals...)
}

// CloseCodes returns the WebSocket close codes the server sent.
func (p *Participant) CloseCodes() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.closes...)
}

// Sessions counts the sessions joined, reconnections included.
func (p *Participant) Sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sessions
}

// LastError is why the last session ended.
func (p *Participant) LastError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// CheckPayloads verifies that every packet received is byte for byte what
// its sender sent.
func (p *Participant) CheckPayloads() error {
	for _, pk := range p.Received() {
		if pk.From == "?" {
			return fmt.Errorf("%s received a payload it cannot read: %x", p.Name, pk.Payload)
		}
		if want := Payload(pk.From, pk.Seq); !bytes.Equal(pk.Payload, want) {
			return fmt.Errorf("%s received %x for %s:%d, want %x", p.Name, pk.Payload, pk.From, pk.Seq, want)
		}
	}
	return nil
}
