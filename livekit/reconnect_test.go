package livekit_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	lk "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// blipProxy forwards TCP connections to a target and can drop every open
// one at once, as a network blip does to a signalling connection.
type blipProxy struct {
	l     net.Listener
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

// After its signalling connection drops, a LiveKit client that tries to
// resume is asked to rejoin, does so with the same token, publishes again,
// and media flows both ways again.
func TestLiveKitClientRejoinsAfterBlip(t *testing.T) {
	e := newEnv(t)
	const conf = "conf-blip"
	e.members.allow(conf, "alice", true)
	e.members.allow(conf, "bob", true)
	proxy := newBlipProxy(t, strings.TrimPrefix(e.srv.URL, "http://"))

	native := dialNative(t, e, conf, "alice")
	eventually(t, "native joined", func() bool { return native.seen("joined", nil) != nil })
	native.publishAudio()
	fromNative := make(chan []byte, 4096)
	restarted := make(chan struct{}, 1)
	room, err := lksdk.ConnectToRoomWithToken("ws://"+proxy.l.Addr().String(), e.token(t, conf, "bob"), &lksdk.RoomCallback{
		OnReconnected: func() { restarted <- struct{}{} },
		ParticipantCallback: lksdk.ParticipantCallback{
			OnTrackSubscribed: func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
				go func() {
					for {
						p, _, err := track.ReadRTP()
						if err != nil {
							return
						}
						select {
						case fromNative <- append([]byte(nil), p.Payload...):
						default:
						}
					}
				}()
			},
		},
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(room.Disconnect)
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "lk-audio", "lk-stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "mic", Source: lk.TrackSource_MICROPHONE}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	sendUntil(t, native.audio.WriteRTP, "alice", stop)
	sendUntil(t, func(p *rtp.Packet) error { return track.WriteRTP(p) }, "bob", stop)
	waitPayloads(t, fromNative, "alice", 10, opusPayload)
	waitPayloads(t, native.payloads, "bob", 10, opusPayload)

	before := native.mark()
	proxy.blip()
	isBob := func(m map[string]any) bool { return m["user"] == "bob" }
	left := -1
	eventually(t, "the native client sees the LiveKit participant leave", func() bool {
		left = native.indexSince(before, "participant_left", isBob)
		return left >= 0
	})
	select {
	case <-restarted:
	case <-waitTimeout():
		t.Fatal("the LiveKit client did not reconnect")
	}
	eventually(t, "the LiveKit participant back", func() bool {
		return native.indexSince(left+1, "participant_joined", isBob) >= 0
	})
	for len(fromNative) > 0 {
		<-fromNative
	}
	for len(native.payloads) > 0 {
		<-native.payloads
	}
	waitPayloads(t, fromNative, "alice", 10, opusPayload)
	waitPayloads(t, native.payloads, "bob", 10, opusPayload)
}
