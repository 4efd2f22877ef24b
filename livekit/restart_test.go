package livekit_test

import (
	"testing"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
)

// A replica that drains ends its sessions with media.ReasonRestart: a
// LiveKit client is sent a LeaveRequest with action RECONNECT, and comes
// back by itself.
func TestRestartAsksLiveKitClientToReconnect(t *testing.T) {
	e := newEnv(t)
	const conf = "conf-restart"
	e.members.allow(conf, "bob", true)
	back := make(chan struct{}, 4)
	room, err := lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, "bob"), &lksdk.RoomCallback{
		OnReconnected: func() { back <- struct{}{} },
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(room.Disconnect)
	present := func() bool {
		ps, _ := e.sfu.Participants(conf)
		return len(ps) == 1 && ps[0].User == "bob"
	}
	eventually(t, "bob in the SFU", present)
	if n := e.sfu.Restart(); n != 1 {
		t.Fatalf("Restart ended %d sessions, want 1", n)
	}
	select {
	case <-back:
	case <-time.After(30 * time.Second):
		t.Fatal("the LiveKit client did not reconnect after the restart")
	}
	eventually(t, "bob back in the SFU", present)
}
