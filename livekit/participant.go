package livekit

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"
	lk "github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/entente-org/entente/media"
)

// Limits of the signalling WebSocket (spec/client-api.md §8.1).
const (
	maxFrameSize   = 64 << 10
	hardFrameLimit = 1 << 20
	writeTimeout   = 5 * time.Second
	outboxSize     = 512
	workSize       = 256
	// pingInterval and pingTimeout are announced in JoinResponse: the
	// client pings every interval and gives up after the timeout.
	pingInterval = 10
	pingTimeout  = 30
	// keepaliveInterval is the server's own WebSocket ping.
	keepaliveInterval = 15 * time.Second
)

// participant is one LiveKit client's WebSocket and the media.Session it
// drives. The read loop and the worker call the session; the session's
// handler methods (handler.go) only queue messages and work, as they run
// under the session's locks.
type participant struct {
	srv   *Server
	adm   admission
	log   *slog.Logger
	sess  *media.Session
	me    media.Participant
	ws    *websocket.Conn
	out   chan []byte
	work  chan func()
	done  chan struct{}
	close sync.Once

	mu     sync.Mutex
	reason string
	joined bool
	// others are the other participants as last announced, by user.
	others map[string]*lk.ParticipantInfo
	// owners maps each remote track to its publisher.
	owners map[string]string
	// pending are AddTrack requests whose m-section the next offer carries,
	// by cid.
	pending map[string]pendingTrack
	// own are this participant's published tracks, by sid.
	own map[string]*lk.TrackInfo
	// live are the own tracks the SFU has published (their media arrived).
	live map[string]bool
	// mids maps the m-section of each published track to its sid.
	mids    map[string]string
	speaker string
	// offerID is the id of the last publisher offer, echoed in its answer;
	// subOfferID numbers the subscriber offers.
	offerID, subOfferID uint32

	// dmu guards the client's data channels (data.go).
	dmu      sync.Mutex
	reliable *webrtc.DataChannel
	lossy    *webrtc.DataChannel
}

type pendingTrack struct {
	sid string
	req *lk.AddTrackRequest
}

func newParticipant(s *Server, a admission, log *slog.Logger) *participant {
	return &participant{
		srv: s, adm: a, log: log,
		out:     make(chan []byte, outboxSize),
		work:    make(chan func(), workSize),
		done:    make(chan struct{}),
		others:  make(map[string]*lk.ParticipantInfo),
		owners:  make(map[string]string),
		pending: make(map[string]pendingTrack),
		own:     make(map[string]*lk.TrackInfo),
		mids:    make(map[string]string),
		live:    make(map[string]bool),
	}
}

// run serves the connection until either side ends it.
func (p *participant) run(ws *websocket.Conn, sess *media.Session) {
	p.ws, p.sess, p.me = ws, sess, sess.Me()
	p.srv.rooms.add(p.adm.grant.Conference, p)
	defer func() {
		if p.srv.rooms.remove(p.adm.grant.Conference, p) {
			p.srv.quality.forget(p.adm.grant.Conference)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var loops sync.WaitGroup
	loops.Add(4)
	go func() { defer loops.Done(); p.writeLoop(ctx) }()
	go func() { defer loops.Done(); p.workLoop(ctx) }()
	go func() { defer loops.Done(); p.keepalive(ctx) }()
	go func() { defer loops.Done(); p.reportQuality(ctx.Done()) }()
	sess.Join()
	for {
		req, err := p.read(ctx)
		if err != nil {
			break
		}
		if req != nil {
			p.handle(req)
		}
	}
	sess.Close()
	p.finish()
	cancel()
	loops.Wait()
	_ = ws.CloseNow()
}

// read returns the next SignalRequest, or nil after answering a frame that
// is not one.
func (p *participant) read(ctx context.Context) (*lk.SignalRequest, error) {
	typ, r, err := p.ws.Reader(ctx)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, maxFrameSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFrameSize {
		p.log.Info("signal frame too large; disconnecting")
		return nil, io.ErrUnexpectedEOF
	}
	req := &lk.SignalRequest{}
	if typ == websocket.MessageText {
		err = protojson.Unmarshal(data, req)
	} else {
		err = proto.Unmarshal(data, req)
	}
	if err != nil {
		p.log.Info("malformed signal request", "err", err)
		p.refuseRequest("malformed SignalRequest: " + err.Error())
		return nil, nil
	}
	return req, nil
}

// refuseRequest answers a request that cannot be served with an
// ErrorResponse-carrying RequestResponse, LiveKit's way of saying no
// without ending the session.
func (p *participant) refuseRequest(msg string) {
	p.send(&lk.SignalResponse{Message: &lk.SignalResponse_RequestResponse{RequestResponse: &lk.RequestResponse{
		Reason: lk.RequestResponse_NOT_ALLOWED, Message: msg,
	}}})
}

// send queues a response; a client that cannot keep up is disconnected.
func (p *participant) send(m *lk.SignalResponse) {
	select {
	case <-p.done:
		return // the connection is closing; nothing more is sent
	default:
	}
	data, err := proto.Marshal(m)
	if err != nil {
		p.log.Error("encode signal response", "err", err)
		return
	}
	select {
	case p.out <- data:
	default:
		p.log.Warn("signal outbox full, disconnecting")
		p.finish()
	}
}

// later runs fn on the worker, outside the session's locks.
func (p *participant) later(fn func()) {
	select {
	case p.work <- fn:
	default:
		p.log.Warn("signal work queue full, disconnecting")
		p.finish()
	}
}

func (p *participant) finish() { p.close.Do(func() { close(p.done) }) }

// keepalive sends a WebSocket ping every keepaliveInterval: not every
// LiveKit client sends its own pings (server-sdk-go does not), and one that
// does not answer within the interval is gone even if its TCP connection
// was never closed.
func (p *participant) keepalive(ctx context.Context) {
	tick := time.NewTicker(keepaliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.done:
			return
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, keepaliveInterval)
		err := p.ws.Ping(pctx)
		cancel()
		if err != nil {
			p.log.Info("client does not answer pings; disconnecting")
			p.finish()
			return
		}
	}
}

func (p *participant) workLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.done:
			return
		case fn := <-p.work:
			fn()
		}
	}
}

// writeLoop is the only writer of the WebSocket; once done it flushes what
// is queued (such as a Leave) and closes the connection.
func (p *participant) writeLoop(ctx context.Context) {
	write := func(data []byte) bool {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		defer cancel()
		return p.ws.Write(wctx, websocket.MessageBinary, data) == nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case data := <-p.out:
			if !write(data) {
				p.finish()
			}
		case <-p.done:
			for drained := false; !drained; {
				select {
				case data := <-p.out:
					write(data)
				default:
					drained = true
				}
			}
			p.mu.Lock()
			reason := p.reason
			p.mu.Unlock()
			code := websocket.StatusNormalClosure
			if reason != "" {
				code = websocket.StatusPolicyViolation
			}
			_ = p.ws.Close(code, reason)
			return
		}
	}
}

// handle serves one SignalRequest (spec/client-api.md §8.3).
func (p *participant) handle(req *lk.SignalRequest) {
	switch m := req.Message.(type) {
	case *lk.SignalRequest_Offer:
		p.offer(m.Offer)
	case *lk.SignalRequest_Answer:
		p.sess.SubscribeAnswer(m.Answer.GetSdp())
	case *lk.SignalRequest_Trickle:
		p.trickle(m.Trickle)
	case *lk.SignalRequest_AddTrack:
		p.addTrack(m.AddTrack)
	case *lk.SignalRequest_Mute:
		p.mute(m.Mute.GetSid(), m.Mute.GetMuted())
	case *lk.SignalRequest_Subscription:
		p.subscription(m.Subscription)
	case *lk.SignalRequest_TrackSetting:
		p.trackSettings(m.TrackSetting)
	case *lk.SignalRequest_Leave:
		p.log.Info("client left")
		p.sess.Close()
	case *lk.SignalRequest_Ping:
		p.send(&lk.SignalResponse{Message: &lk.SignalResponse_Pong{Pong: m.Ping}})
	case *lk.SignalRequest_PingReq:
		p.send(&lk.SignalResponse{Message: &lk.SignalResponse_PongResp{PongResp: &lk.Pong{
			LastPingTimestamp: m.PingReq.GetTimestamp(), Timestamp: time.Now().UnixMilli(),
		}}})
	case *lk.SignalRequest_UpdateLayers, *lk.SignalRequest_SubscriptionPermission,
		*lk.SignalRequest_SyncState, *lk.SignalRequest_Simulate, *lk.SignalRequest_UpdateMetadata,
		*lk.SignalRequest_UpdateAudioTrack, *lk.SignalRequest_UpdateVideoTrack:
		// Accepted and ignored: hints this server does not act on
		// (spec/client-api.md §8.5).
	case nil:
		p.refuseRequest("empty SignalRequest")
	default:
		p.refuseRequest("SignalRequest not supported by this server")
	}
}

func (p *participant) trickle(t *lk.TrickleRequest) {
	var init webrtc.ICECandidateInit
	if err := json.Unmarshal([]byte(t.GetCandidateInit()), &init); err != nil {
		p.refuseRequest("trickle candidateInit is not an RTCIceCandidateInit: " + err.Error())
		return
	}
	p.sess.AddCandidate(pcName(t.GetTarget()), init)
}

func pcName(t lk.SignalTarget) string {
	if t == lk.SignalTarget_SUBSCRIBER {
		return "subscribe"
	}
	return "publish"
}

func (p *participant) subscription(u *lk.UpdateSubscription) {
	if u.GetSubscribe() && !p.adm.grant.CanSubscribe {
		p.refuseRequest("the access token does not grant canSubscribe")
		return
	}
	sids := append([]string(nil), u.GetTrackSids()...)
	for _, pt := range u.GetParticipantTracks() {
		sids = append(sids, pt.GetTrackSids()...)
	}
	for _, sid := range sids {
		if u.GetSubscribe() {
			p.sess.Subscribe(sid, 0, 0)
		} else {
			p.sess.Unsubscribe(sid)
		}
	}
}

// trackSettings maps a subscriber's wish for a size, or else for a
// quality, to the subscription's limit; disabling a track unsubscribes it.
func (p *participant) trackSettings(u *lk.UpdateTrackSettings) {
	for _, sid := range u.GetTrackSids() {
		if u.GetDisabled() {
			p.sess.Unsubscribe(sid)
			continue
		}
		w, h := int(u.GetWidth()), int(u.GetHeight())
		if w == 0 && h == 0 {
			w, h = p.qualitySize(sid, u.GetQuality())
		}
		p.sess.Subscribe(sid, w, h)
	}
}

// qualitySize is the size of a track's simulcast layer of quality q
// (spec/client-api.md §5.4: the layers are a quarter, a half and the whole
// of the announced size); 0×0, no limit, for HIGH or an unknown track.
func (p *participant) qualitySize(sid string, q lk.VideoQuality) (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	info, ok := p.others[p.owners[sid]]
	if !ok {
		return 0, 0
	}
	for _, t := range info.Tracks {
		if t.Sid != sid {
			continue
		}
		switch q {
		case lk.VideoQuality_LOW:
			return int(t.Width) / 4, int(t.Height) / 4
		case lk.VideoQuality_MEDIUM:
			return int(t.Width) / 2, int(t.Height) / 2
		}
	}
	return 0, 0
}

// mute records the wish, so that a track whose media has not arrived yet is
// muted once it is published (handler.go), and tells the SFU when it is.
func (p *participant) mute(sid string, muted bool) {
	p.mu.Lock()
	t, ok := p.own[sid]
	if ok {
		t.Muted = muted
	}
	live := p.live[sid]
	p.mu.Unlock()
	switch {
	case !ok:
		p.refuseRequest("mute: no published track " + sid)
	case live:
		p.sess.Mute(sid, muted)
	}
}
