package livekit_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lk "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/entente-org/entente/livekit"
)

// blipProxy forwards TCP connections to a target and can drop every open
// one at once, as a network blip does to a signalling connection, and hold
// new ones off (accept and close them) for as long as the blip lasts.
type blipProxy struct {
	l     net.Listener
	held  atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

func newBlipProxy(t *testing.T, target string) *blipProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blipProxy{l: l}
	t.Cleanup(func() { l.Close(); p.blip() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if p.held.Load() {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *blipProxy) blip() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// blipCall is a native client (alice) and a LiveKit client (bob, through
// the proxy) in one conference, sending Opus to each other, and a second
// LiveKit client (carol, not through the proxy) watching bob.
type blipCall struct {
	e          *env
	proxy      *blipProxy
	native     *nativeClient
	bob        *lksdk.Room
	fromNative chan []byte
	reconnects chan struct{}
	// bobGone counts the times carol saw bob leave.
	bobGone atomic.Int32
	carol   *lksdk.Room
}

func startBlipCall(t *testing.T, e *env, conf string) *blipCall {
	t.Helper()
	c := &blipCall{e: e, fromNative: make(chan []byte, 4096), reconnects: make(chan struct{}, 4)}
	for _, u := range []string{"alice", "bob", "carol"} {
		e.members.allow(conf, u, true)
	}
	c.proxy = newBlipProxy(t, strings.TrimPrefix(e.srv.URL, "http://"))
	c.native = dialNative(t, e, conf, "alice")
	eventually(t, "native joined", func() bool { return c.native.seen("joined", nil) != nil })
	c.native.publishAudio()
	room, err := lksdk.ConnectToRoomWithToken("ws://"+c.proxy.l.Addr().String(), e.token(t, conf, "bob"), &lksdk.RoomCallback{
		OnReconnected: func() { c.reconnects <- struct{}{} },
		ParticipantCallback: lksdk.ParticipantCallback{
			OnTrackSubscribed: func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
				go readPayloads(track, c.fromNative)
			},
		},
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(room.Disconnect)
	c.bob = room
	c.carol, err = lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, "carol"), &lksdk.RoomCallback{
		OnParticipantDisconnected: func(rp *lksdk.RemoteParticipant) {
			if rp.Identity() == "bob" {
				c.bobGone.Add(1)
			}
		},
	})
	if err != nil {
		t.Fatalf("connect carol: %v", err)
	}
	t.Cleanup(c.carol.Disconnect)
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "lk-audio", "lk-stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "mic", Source: lk.TrackSource_MICROPHONE}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	sendUntil(t, c.native.audio.WriteRTP, "alice", stop)
	sendUntil(t, func(p *rtp.Packet) error { return track.WriteRTP(p) }, "bob", stop)
	c.flowing(t)
	return c
}

// flowing waits for fresh media both ways.
func (c *blipCall) flowing(t *testing.T) {
	t.Helper()
	for len(c.fromNative) > 0 {
		<-c.fromNative
	}
	for len(c.native.payloads) > 0 {
		<-c.native.payloads
	}
	waitPayloads(t, c.fromNative, "alice", 10, opusPayload)
	waitPayloads(t, c.native.payloads, "bob", 10, opusPayload)
}

func (c *blipCall) waitReconnected(t *testing.T) {
	t.Helper()
	select {
	case <-c.reconnects:
	case <-waitTimeout():
		t.Fatal("the LiveKit client did not reconnect")
	}
}

func isBob(m map[string]any) bool { return m["user"] == "bob" }

// After its signalling connection drops, a LiveKit client resumes its
// session: it keeps its participant sid, its track and its subscription,
// media never stops being forwarded, and nobody sees it leave or join
// again.
func TestLiveKitClientResumesAfterBlip(t *testing.T) {
	e := newEnv(t)
	c := startBlipCall(t, e, "conf-resume")
	sid := c.bob.LocalParticipant.SID()
	pubs := c.bob.LocalParticipant.TrackPublications()
	if sid != "bob" || len(pubs) != 1 {
		t.Fatalf("before the blip: sid %q, %d publications", sid, len(pubs))
	}
	trackSID := pubs[0].SID()
	before := c.native.mark()
	c.proxy.blip()
	c.waitReconnected(t)
	c.flowing(t)
	if got := c.bob.LocalParticipant.SID(); got != sid {
		t.Fatalf("sid after resuming %q, want %q", got, sid)
	}
	if pubs := c.bob.LocalParticipant.TrackPublications(); len(pubs) != 1 || pubs[0].SID() != trackSID {
		t.Fatalf("publications after resuming: %v, want the one track %s", pubs, trackSID)
	}
	for _, typ := range []string{"participant_left", "participant_joined", "track_removed", "track_added"} {
		if m := c.native.seenSince(before, typ, nil); m != nil {
			t.Fatalf("the native client saw %s after the blip: %v", typ, m)
		}
	}
	if n := c.bobGone.Load(); n != 0 {
		t.Fatalf("the other LiveKit client saw bob leave %d times", n)
	}
	var bobs int
	for _, rp := range c.carol.GetRemoteParticipants() {
		if rp.Identity() == "bob" {
			bobs++
		}
	}
	if bobs != 1 {
		t.Fatalf("the other LiveKit client sees bob %d times", bobs)
	}
	// A second blip is resumed just the same.
	c.proxy.blip()
	c.waitReconnected(t)
	c.flowing(t)
	if m := c.native.seenSince(before, "participant_left", nil); m != nil {
		t.Fatalf("the native client saw %v after the second blip", m)
	}
}

// A client that stays away longer than the resume window finds its session
// ended: the others saw it leave, its resume is answered with a request to
// rejoin, and it rejoins afresh and publishes again.
func TestLiveKitClientRejoinsAfterResumeWindow(t *testing.T) {
	e := newEnvWith(t, func(o *livekit.Options) { o.ResumeWindow = 500 * time.Millisecond })
	c := startBlipCall(t, e, "conf-rejoin")
	before := c.native.mark()
	c.proxy.held.Store(true)
	c.proxy.blip()
	left := -1
	eventually(t, "the native client sees the LiveKit participant leave once the window passed", func() bool {
		left = c.native.indexSince(before, "participant_left", isBob)
		return left >= 0
	})
	c.proxy.held.Store(false)
	c.waitReconnected(t)
	eventually(t, "the LiveKit participant back", func() bool {
		return c.native.indexSince(left+1, "participant_joined", isBob) >= 0
	})
	c.flowing(t)
}
