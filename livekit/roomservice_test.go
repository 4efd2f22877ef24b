package livekit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	lk "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/entente-org/entente/livekit"
)

// A backend with the node's key and secret lists a conference's
// participants, native and LiveKit alike, mutes a track and removes a
// participant through LiveKit's RoomService, with LiveKit's own client.
func TestLiveKitRoomService(t *testing.T) {
	e := newEnv(t)
	const conf = "conf-rooms"
	e.members.allow(conf, "alice", true)
	e.members.allow(conf, "bob", true)
	native := dialNative(t, e, conf, "alice")
	eventually(t, "native joined", func() bool { return native.seen("joined", nil) != nil })
	native.publishAudio()
	reasons := make(chan lksdk.DisconnectionReason, 1)
	room, err := lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, "bob"), &lksdk.RoomCallback{
		OnDisconnectedWithReason: func(r lksdk.DisconnectionReason) { reasons <- r },
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(room.Disconnect)
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "lk-audio", "lk-stream")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "mic", Source: lk.TrackSource_MICROPHONE})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	sendUntil(t, native.audio.WriteRTP, "alice", stop)
	sendUntil(t, func(p *rtp.Packet) error { return track.WriteRTP(p) }, "bob", stop)
	waitPayloads(t, native.payloads, "bob", 5, opusPayload)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs := lksdk.NewRoomServiceClient(e.srv.URL, apiKey, apiSecret)
	var list *lk.ListParticipantsResponse
	eventually(t, "both participants listed with a track each", func() bool {
		list, err = rs.ListParticipants(ctx, &lk.ListParticipantsRequest{Room: conf})
		if err != nil {
			t.Fatalf("ListParticipants: %v", err)
		}
		n := 0
		for _, p := range list.Participants {
			if (p.Identity == "alice" || p.Identity == "bob") && len(p.Tracks) == 1 &&
				p.Attributes[livekit.AttrOrganisation] == "Ministry of Tests" {
				n++
			}
		}
		return n == 2 && len(list.Participants) == 2
	})

	// Muting bob's track: the native client sees it muted and bob's
	// client is told.
	if _, err := rs.MutePublishedTrack(ctx, &lk.MuteRoomTrackRequest{Room: conf, Identity: "bob", TrackSid: pub.SID(), Muted: true}); err != nil {
		t.Fatalf("MutePublishedTrack: %v", err)
	}
	eventually(t, "native client told of the mute", func() bool {
		return native.seen("track_muted", func(m map[string]any) bool { return m["track"] == pub.SID() && m["muted"] == true }) != nil
	})
	eventually(t, "bob's client muted", func() bool { return pub.IsMuted() })

	// Another room's token is refused; so is a missing participant.
	other := lksdk.NewRoomServiceClient(e.srv.URL, apiKey, apiSecret)
	if _, err := other.ListParticipants(ctx, &lk.ListParticipantsRequest{Room: ""}); err == nil {
		t.Fatal("ListParticipants without a room succeeded")
	}
	if _, err := rs.RemoveParticipant(ctx, &lk.RoomParticipantIdentity{Room: conf, Identity: "nobody"}); err == nil || !strings.Contains(err.Error(), "has no media session") {
		t.Fatalf("RemoveParticipant of nobody: %v", err)
	}
	if _, err := lksdk.NewRoomServiceClient(e.srv.URL, "APIother", apiSecret).ListParticipants(ctx, &lk.ListParticipantsRequest{Room: conf}); err == nil || !strings.Contains(err.Error(), "unknown API key") {
		t.Fatalf("ListParticipants with another key: %v", err)
	}

	if _, err := rs.RemoveParticipant(ctx, &lk.RoomParticipantIdentity{Room: conf, Identity: "bob"}); err != nil {
		t.Fatalf("RemoveParticipant: %v", err)
	}
	select {
	case r := <-reasons:
		if r != lksdk.ParticipantRemoved {
			t.Fatalf("bob disconnected with %q", r)
		}
	case <-waitTimeout():
		t.Fatal("bob stayed connected")
	}
	eventually(t, "native client sees bob leave", func() bool {
		return native.seen("participant_left", func(m map[string]any) bool { return m["user"] == "bob" }) != nil
	})
}
