package livekit

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
	lk "github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"

	"github.com/entente-org/entente/media"
)

// A participant's media session outlives its signalling connection for a
// while (spec/client-api.md §8.1 `reconnect`): when the WebSocket drops, the
// session, its tracks and its subscriptions stay as they are, and what the
// client should be told waits in the outbox. A client that connects again
// with `reconnect=1` within the resume window takes the session back; after
// the window, the session ends and the client rejoins afresh.

// DefaultResumeWindow is how long a session waits for its client to resume.
const DefaultResumeWindow = 20 * time.Second

// start joins the session and runs what outlives any one connection: the
// worker, and the end of the session once done.
func (p *participant) start(sess *media.Session) {
	p.sess, p.me = sess, sess.Me()
	p.srv.rooms.add(p.adm.grant.Conference, p)
	p.srv.sessions.add(p)
	go p.workLoop()
	go p.reportQuality(nil)
	go func() {
		<-p.done
		sess.Close()
		if p.srv.rooms.remove(p.adm.grant.Conference, p) {
			p.srv.quality.forget(p.adm.grant.Conference)
		}
		p.srv.sessions.remove(p)
		p.connMu.Lock()
		if p.expiry != nil {
			p.expiry.Stop()
		}
		p.connMu.Unlock()
	}()
	sess.Join()
}

// serve runs one signalling connection until it drops or the session ends.
// first, when set, is written before anything queued.
func (p *participant) serve(ws *websocket.Conn, first []byte) {
	p.connMu.Lock()
	p.gen++
	gen, old := p.gen, p.ws
	p.ws = ws
	if p.expiry != nil {
		p.expiry.Stop()
		p.expiry = nil
	}
	p.connMu.Unlock()
	if old != nil {
		// The client came back before the server saw its old connection go.
		_ = old.CloseNow()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if first != nil {
		wctx, wcancel := context.WithTimeout(ctx, writeTimeout)
		err := ws.Write(wctx, websocket.MessageBinary, first)
		wcancel()
		if err != nil {
			cancel()
		}
	}
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { defer loops.Done(); p.writeLoop(ctx, cancel, ws) }()
	go func() { defer loops.Done(); p.keepalive(ctx, cancel, ws) }()
	var err error
	for {
		var req *lk.SignalRequest
		if req, err = p.read(ctx, ws); err != nil {
			break
		}
		if req != nil {
			p.handle(req)
		}
	}
	if s := websocket.CloseStatus(err); s == websocket.StatusNormalClosure || s == websocket.StatusGoingAway {
		// The client closed the connection on purpose: it is not coming
		// back to this session.
		p.finish()
	}
	cancel()
	loops.Wait()
	_ = ws.CloseNow()
	select {
	case <-p.done:
		return
	default:
	}
	p.detach(gen)
}

// detach leaves the session without a connection for the resume window,
// unless a newer connection has taken over already. A client that never
// got its JoinResponse has nothing to resume.
func (p *participant) detach(gen int) {
	p.mu.Lock()
	joined := p.joined
	p.mu.Unlock()
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.gen != gen {
		return
	}
	p.ws = nil
	if !joined {
		p.finish()
		return
	}
	p.log.Info("signalling connection lost; waiting for the client to resume", "window", p.srv.resumeWindow())
	p.expiry = time.AfterFunc(p.srv.resumeWindow(), func() {
		p.connMu.Lock()
		gone := p.gen == gen && p.ws == nil
		p.connMu.Unlock()
		if gone {
			p.log.Info("client did not resume; session ended")
			p.finish()
		}
	})
}

// resume serves a client's new connection to this session: ReconnectResponse
// first, then what was queued meanwhile, then the others' whole
// descriptions and a new subscriber offer with an ICE restart, as some of
// what the old connection carried last may have been lost with it.
func (p *participant) resume(ws *websocket.Conn) {
	p.connMu.Lock()
	ice := p.ice
	p.connMu.Unlock()
	first, err := proto.Marshal(&lk.SignalResponse{Message: &lk.SignalResponse_Reconnect{Reconnect: &lk.ReconnectResponse{
		IceServers: ice,
		ServerInfo: &lk.ServerInfo{
			Edition: lk.ServerInfo_Standard, Version: ServerVersion,
			Protocol: int32(p.adm.protocol), NodeId: "entente",
		},
		LastMessageSeq: p.lastSeq.Load(),
	}}})
	if err != nil {
		_ = ws.CloseNow()
		return
	}
	p.log.Info("client resumed")
	p.later(p.resync)
	p.serve(ws, first)
}

// resync restates every other participant, one version up, and restarts
// the subscriber connection.
func (p *participant) resync() {
	p.mu.Lock()
	infos := make([]*lk.ParticipantInfo, 0, len(p.others))
	for _, info := range p.others {
		info.Version++
		infos = append(infos, cloneInfo(info))
	}
	p.mu.Unlock()
	if len(infos) > 0 {
		p.send(&lk.SignalResponse{Message: &lk.SignalResponse_Update{Update: &lk.ParticipantUpdate{Participants: infos}}})
	}
	p.sess.RestartSubscriber()
}

// keepalive sends a WebSocket ping every keepaliveInterval: not every
// LiveKit client sends its own pings (server-sdk-go does not), and one that
// does not answer within the interval is gone even if its TCP connection
// was never closed.
func (p *participant) keepalive(ctx context.Context, cancel context.CancelFunc, ws *websocket.Conn) {
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
		pctx, pcancel := context.WithTimeout(ctx, keepaliveInterval)
		err := ws.Ping(pctx)
		pcancel()
		if err != nil {
			p.log.Info("client does not answer pings; connection dropped")
			cancel()
			return
		}
	}
}

func (p *participant) workLoop() {
	for {
		select {
		case <-p.done:
			return
		case fn := <-p.work:
			fn()
		}
	}
}

// writeLoop is the only writer of a connection; a write that fails drops
// the connection, not the session. Once the session is done it flushes
// what is queued (such as a Leave) and closes the connection.
func (p *participant) writeLoop(ctx context.Context, cancel context.CancelFunc, ws *websocket.Conn) {
	write := func(data []byte) bool {
		wctx, wcancel := context.WithTimeout(ctx, writeTimeout)
		defer wcancel()
		return ws.Write(wctx, websocket.MessageBinary, data) == nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case data := <-p.out:
			if !write(data) {
				cancel()
				return
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
			_ = ws.Close(code, reason)
			return
		}
	}
}

// sessions are the LiveKit participants of this node that a client may
// resume, by conference and user.
type sessions struct {
	mu sync.Mutex
	by map[string]*participant
}

func sessionKey(conference, user string) string { return conference + "\x00" + user }

func (s *sessions) add(p *participant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by == nil {
		s.by = make(map[string]*participant)
	}
	s.by[sessionKey(p.adm.grant.Conference, p.me.User)] = p
}

func (s *sessions) remove(p *participant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sessionKey(p.adm.grant.Conference, p.me.User)
	if s.by[k] == p {
		delete(s.by, k)
	}
}

func (s *sessions) find(conference, user string) *participant {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.by[sessionKey(conference, user)]
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
		return p
	}
}
