package mediabench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	lk "github.com/livekit/protocol/livekit"
	protologger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// A LiveKit participant of a run is LiveKit's own Go SDK
// (github.com/livekit/server-sdk-go), used only as load: it connects to a
// node's LiveKit signalling (spec/client-api.md §8), publishes the same
// synthetic tracks as the native client and subscribes to every track of
// the others, so that the same meeting can be measured with either kind of
// client.

// Kinds of client a Participant is.
const (
	KindNative  = "native"
	KindLiveKit = "livekit"
)

var quietSDK sync.Once

// connectLiveKit joins with the SDK and, if the participant publishes,
// publishes its tracks and starts sending.
func (c *client) connectLiveKit(ctx context.Context, limit time.Duration) error {
	quietSDK.Do(func() { lksdk.SetLogger(protologger.GetDiscardLogger()) })
	announced := sync.Map{} // track sid → clock time it was announced
	cb := lksdk.NewRoomCallback()
	cb.ParticipantCallback.OnTrackPublished = func(pub *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
		announced.LoadOrStore(pub.SID(), c.clock.now())
	}
	cb.ParticipantCallback.OnTrackSubscribed = func(tr *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		at, _ := announced.LoadOrStore(pub.SID(), c.clock.now())
		kind := "audio"
		if pub.Kind() == lksdk.TrackKindVideo {
			kind = "video"
		}
		s := &subscription{owner: rp.Identity(), kind: kind, announcedNS: at.(int64)}
		c.mu.Lock()
		c.subs[pub.SID()] = s
		c.mu.Unlock()
		c.wg.Go(func() { c.readTrack(tr, s) })
	}
	cb.OnDisconnected = func() {
		if ctx.Err() == nil {
			c.failed(fmt.Errorf("%s: LiveKit connection lost", c.p.Name))
		}
	}
	c.joinedNS = c.clock.now()
	room, err := lksdk.ConnectToRoomWithToken(c.p.URL, c.p.Token, cb,
		lksdk.WithAutoSubscribe(c.p.Subscribe), lksdk.WithConnectTimeout(limit))
	if err != nil {
		return fmt.Errorf("%s: LiveKit connection: %w", c.p.Name, err)
	}
	c.mu.Lock()
	c.room = room
	c.user = room.LocalParticipant.Identity()
	c.mu.Unlock()
	if !c.p.Audio && !c.p.Video {
		return nil
	}
	var tracks []*localTrack
	if c.p.Audio {
		t := &localTrack{kind: "audio"}
		l, err := lksdk.NewLocalTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
		if err != nil {
			return fmt.Errorf("%s: audio track: %w", c.p.Name, err)
		}
		t.lk = []*lksdk.LocalTrack{l}
		if _, err := room.LocalParticipant.PublishTrack(l, &lksdk.TrackPublicationOptions{Name: "microphone", Source: lk.TrackSource_MICROPHONE}); err != nil {
			return fmt.Errorf("%s: publish audio: %w", c.p.Name, err)
		}
		tracks = append(tracks, t)
	}
	if c.p.Video {
		t := &localTrack{kind: "video", simulcast: c.p.Simulcast}
		if err := c.publishLiveKitVideo(room, t); err != nil {
			return err
		}
		tracks = append(tracks, t)
	}
	c.mu.Lock()
	c.tracks = tracks
	c.mu.Unlock()
	for _, t := range tracks {
		c.wg.Go(func() { c.sendLoop(ctx, t) })
	}
	return nil
}

// publishLiveKitVideo publishes the camera, as three simulcast layers
// (q, h, f: a quarter, half and the whole of 1280×720) or one.
func (c *client) publishLiveKitVideo(room *lksdk.Room, t *localTrack) error {
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	keyRequests := lksdk.WithRTCPHandler(func(p rtcp.Packet) {
		switch p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			t.forceKey.Store(true)
		}
	})
	opts := &lksdk.TrackPublicationOptions{Name: "camera", Source: lk.TrackSource_CAMERA, VideoWidth: 1280, VideoHeight: 720}
	if !t.simulcast {
		l, err := lksdk.NewLocalTrack(vp8, keyRequests)
		if err != nil {
			return fmt.Errorf("%s: video track: %w", c.p.Name, err)
		}
		t.lk = []*lksdk.LocalTrack{l}
		if _, err := room.LocalParticipant.PublishTrack(l, opts); err != nil {
			return fmt.Errorf("%s: publish video: %w", c.p.Name, err)
		}
		return nil
	}
	layers := []*lk.VideoLayer{
		{Quality: lk.VideoQuality_LOW, Width: 320, Height: 180},
		{Quality: lk.VideoQuality_MEDIUM, Width: 640, Height: 360},
		{Quality: lk.VideoQuality_HIGH, Width: 1280, Height: 720},
	}
	// The id goes into a=msid, where a space would split it.
	id := "bench-camera-" + strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' {
			return '-'
		}
		return r
	}, c.p.Name)
	for _, layer := range layers {
		l, err := lksdk.NewLocalTrack(vp8, lksdk.WithSimulcast(id, layer), keyRequests)
		if err != nil {
			return fmt.Errorf("%s: video layer: %w", c.p.Name, err)
		}
		t.lk = append(t.lk, l)
	}
	if _, err := room.LocalParticipant.PublishSimulcastTrack(t.lk, opts); err != nil {
		return fmt.Errorf("%s: publish simulcast video: %w", c.p.Name, err)
	}
	return nil
}

// audioLevel is the level LiveKit audio is sent with, as the native
// client's (-30 dBov, voice).
var audioLevel = uint8(30)

// liveKitWriteOptions has the SDK write the audio-level extension on audio.
func liveKitWriteOptions(kind string) *lksdk.SampleWriteOptions {
	if kind != "audio" {
		return nil
	}
	return &lksdk.SampleWriteOptions{AudioLevel: &audioLevel}
}
