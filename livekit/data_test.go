package livekit_test

import (
	"testing"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
)

type received struct {
	from, payload string
}

// Data packets reach the other LiveKit participants of the conference,
// only those they are addressed to, with the sender the server knows.
func TestLiveKitDataPackets(t *testing.T) {
	e := newEnv(t)
	const conf = "conf-data"
	connect := func(user string) (*lksdk.Room, chan received) {
		e.members.allow(conf, user, true)
		ch := make(chan received, 1024)
		room, err := lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, user), &lksdk.RoomCallback{
			ParticipantCallback: lksdk.ParticipantCallback{
				OnDataPacket: func(d lksdk.DataPacket, params lksdk.DataReceiveParams) {
					if u, ok := d.(*lksdk.UserDataPacket); ok {
						select {
						case ch <- received{params.SenderIdentity, string(u.Payload)}:
						default:
							t.Errorf("%s: data packets piled up", user)
						}
					}
				},
			},
		})
		if err != nil {
			t.Fatalf("connect %s: %v", user, err)
		}
		t.Cleanup(room.Disconnect)
		return room, ch
	}
	bob, _ := connect("bob")
	_, carol := connect("carol")
	_, dave := connect("dave")
	expect := func(ch chan received, who string, want received) {
		t.Helper()
		select {
		case got := <-ch:
			if got != want {
				t.Fatalf("%s received %+v, want %+v", who, got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s received nothing, want %+v", who, want)
		}
	}
	// The data channels open once the publisher connection is up; the
	// first packets may go before that, so send until one arrives.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := bob.LocalParticipant.PublishDataPacket(lksdk.UserData([]byte("hello")), lksdk.WithDataPublishReliable(true)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-carol:
			if got != (received{"bob", "hello"}) {
				t.Fatalf("carol received %+v", got)
			}
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no data packet reached carol")
			}
			continue
		}
		break
	}
	// Drain what dave got of the warm-up, which were all "hello" from bob.
	for drained := false; !drained; {
		select {
		case got := <-dave:
			if got != (received{"bob", "hello"}) {
				t.Fatalf("dave received %+v", got)
			}
		case <-time.After(500 * time.Millisecond):
			drained = true
		}
	}
	for len(carol) > 0 {
		<-carol
	}
	if err := bob.LocalParticipant.PublishDataPacket(lksdk.UserData([]byte("for carol")), lksdk.WithDataPublishReliable(true),
		lksdk.WithDataPublishDestination([]string{"carol"})); err != nil {
		t.Fatal(err)
	}
	if err := bob.LocalParticipant.PublishDataPacket(lksdk.UserData([]byte("for all")), lksdk.WithDataPublishReliable(true)); err != nil {
		t.Fatal(err)
	}
	expect(carol, "carol", received{"bob", "for carol"})
	expect(carol, "carol", received{"bob", "for all"})
	// The reliable channel is ordered: "for all" first means dave never
	// got "for carol".
	expect(dave, "dave", received{"bob", "for all"})
}
