package livekit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
)

// A moderator's removal reaches a LiveKit participant as a LeaveRequest,
// and the removed user can no longer connect.
func TestLiveKitParticipantRemovedByModerator(t *testing.T) {
	const wait = 30 * time.Second
	f := nodetest.New(t)
	trustCA(t, f)
	a := f.Start(t, "Ministry", func(c *config.Config) { c.LiveKit = config.NewLiveKitCredentials() })
	ctx := context.Background()
	alice, _ := nodetest.User(t, a, "alice", "Alice")
	carol, _ := nodetest.User(t, a, "carol", "Carol")
	conf, err := a.Federation().CreateConference(ctx, alice, "Removal", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []localuser.User{alice, carol} {
		if _, _, err := a.Federation().Join(ctx, u, conf.ID); err != nil {
			t.Fatal(err)
		}
	}
	key, secret, ok := a.LiveKitCredentials()
	if !ok {
		t.Fatal("LiveKit is off on a node with credentials")
	}
	// A backend holding the key and secret mints with the bare user ID.
	tok := mintWith(t, key, secret, conf.ID, "carol", time.Hour)
	reasons := make(chan lksdk.DisconnectionReason, 1)
	room, err := lksdk.ConnectToRoomWithToken(a.LiveKitURL(), tok, &lksdk.RoomCallback{
		OnDisconnectedWithReason: func(r lksdk.DisconnectionReason) { reasons <- r },
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(room.Disconnect)
	if room.LocalParticipant.Identity() != federation.UserRef("carol", a.DID()) {
		t.Fatalf("identity %q", room.LocalParticipant.Identity())
	}
	if _, err := a.Federation().Moderate(ctx, alice, conf.ID, federation.TypeRemove, federation.UserRef("carol", a.DID())); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	select {
	case r := <-reasons:
		if r != lksdk.ParticipantRemoved {
			t.Fatalf("disconnected with %q, want removal", r)
		}
		t.Logf("disconnected %s after the removal", time.Since(removed).Round(time.Millisecond))
	case <-time.After(wait):
		t.Fatal("the removed LiveKit participant stayed connected")
	}
	_, err = lksdk.ConnectToRoomWithToken(a.LiveKitURL(), tok, &lksdk.RoomCallback{})
	if err == nil || !strings.Contains(err.Error(), "not a participant of conference "+conf.ID) {
		t.Fatalf("a removed user connecting again: %v", err)
	}
}
