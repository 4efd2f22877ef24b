package media

import (
	"testing"
	"time"

	"github.com/entente-org/entente/internal/testwait"
)

// TestSameUserTakesOverTheirSession: a user whose browser reloaded (or
// crashed) connects again while the SFU still holds their old session. The
// new session replaces the old one at once: the old is told "replaced" and
// closed, its tracks leave, the others see the user leave and come back
// once, and then receive the new session's media.
func TestSameUserTakesOverTheirSession(t *testing.T) {
	n := newTestNode(t)
	const alice = "alice@did:web:a.example"
	old := connect(t, n, "conf-t", alice, clientOptions{})
	bob := connect(t, n, "conf-t", "bob@did:web:b.example", clientOptions{autoSubscribe: true})
	first := &testTrack{tag: 'o', kind: "audio", source: "microphone"}
	old.publish(first)
	oldID := bob.waitTrackAdded(first, alice)
	bob.waitMedia(oldID, 10, 15*time.Second)

	fresh := connect(t, n, "conf-t", alice, clientOptions{})
	if r := old.expect("removed", 10*time.Second); r["reason"] != "replaced" {
		t.Errorf("old session: removed reason = %v, want replaced", r["reason"])
	}
	// The old session's connection is closed after the message.
	deadline := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-old.msgs:
		case <-deadline:
			t.Fatal("the replaced session's WebSocket stays open")
		}
	}

	// Bob hears, in order: the old track go, alice leave, alice join.
	want := []string{"track_removed", "participant_left", "participant_joined"}
	var got []string
	for len(got) < len(want) {
		m := bob.expect(want[len(got)], 10*time.Second)
		who := m["user"]
		if m["type"] == "track_removed" {
			who = alice
			if m["track"] != oldID {
				t.Errorf("track_removed %v, want %s", m["track"], oldID)
			}
		}
		if who != alice {
			t.Errorf("%s for %v, want %s", m["type"], who, alice)
		}
		got = append(got, m["type"].(string))
	}
	bob.mu.Lock()
	joins, lefts := 0, 0
	for _, m := range bob.seen {
		switch m["type"] {
		case "participant_joined":
			joins++
		case "participant_left":
			lefts++
		}
	}
	bob.mu.Unlock()
	if joins != 1 || lefts != 1 {
		t.Errorf("bob saw %d joins and %d leaves of alice's takeover, want 1 and 1", joins, lefts)
	}
	n.sfu.router.mu.Lock()
	conf := n.sfu.router.conferences["conf-t"]
	n.sfu.router.mu.Unlock()
	if p, ok := conf.participant(alice); !ok || p.User != alice {
		t.Fatalf("alice is not in the conference after the takeover")
	}
	count := 0
	for _, d := range n.sfu.router.downs("conf-t") {
		if c, ok := d.(*client); ok && c.me.User == alice {
			count++
		}
	}
	if count != 1 {
		t.Errorf("alice has %d sessions in the conference, want 1", count)
	}

	// The new session's media reaches bob.
	second := &testTrack{tag: 'n', kind: "audio", source: "microphone"}
	fresh.publish(second)
	added := bob.expect("track_added", 10*time.Second)
	newID, _ := added["id"].(string)
	if added["owner"] != alice || newID == oldID {
		t.Fatalf("track_added %v after the takeover, want a new track of %s", added, alice)
	}
	for _, r := range bob.waitMedia(newID, 10, 15*time.Second) {
		if tag, _, _, ok := parsePayload(r.payload); !ok || tag != 'n' {
			t.Fatalf("bob received %x on the new track, not the new session's media", r.payload)
		}
	}
}

// TestTakeOverStartsWithTheOthersKeyframe: a user comes back while their
// old session is still subscribed to another participant's camera, whose
// encoder sends a keyframe only when asked (as a browser's does). The new
// session must start decoding that camera: the SFU asks the publisher for
// a keyframe for it and the first packet it forwards is one. The old
// session is either still connected (a second window, a reload whose
// page had not closed its socket yet) or dead without the SFU knowing it
// yet (a crash: its peer connections are gone, its socket not timed out).
func TestTakeOverStartsWithTheOthersKeyframe(t *testing.T) {
	for _, crashed := range []bool{false, true} {
		name := "old session connected"
		if crashed {
			name = "old session crashed"
		}
		t.Run(name, func(t *testing.T) {
			n := newTestNode(t)
			const alice, bob = "alice@did:web:a.example", "bob@did:web:b.example"
			pub := connect(t, n, "conf-k", alice, clientOptions{})
			cam := &testTrack{tag: 'c', kind: "video", source: "camera", simulcast: true, keyframesOnRequest: true}
			mic := &testTrack{tag: 'm', kind: "audio", source: "microphone"}
			pub.publish(cam, mic)

			old := connect(t, n, "conf-k", bob, clientOptions{autoSubscribe: true, maxW: 640, maxH: 360})
			camID := old.waitTrackAdded(cam, alice)
			startsAtKeyframe(t, old.waitMedia(camID, 10, time.Minute), "the first session")
			if crashed {
				_ = old.sub.Close()
				_ = old.pub.Close()
			}

			fresh := connect(t, n, "conf-k", bob, clientOptions{autoSubscribe: true, maxW: 640, maxH: 360})
			if r := old.expect("removed", time.Minute); r["reason"] != "replaced" {
				t.Fatalf("old session: removed reason = %v, want replaced", r["reason"])
			}
			if id := fresh.waitTrackAdded(cam, alice); id != camID {
				t.Fatalf("the new session sees camera %s, want %s", id, camID)
			}
			micID := fresh.waitTrackAdded(mic, alice)
			startsAtKeyframe(t, fresh.waitMedia(camID, 10, time.Minute), "the new session")
			checkExact(t, mic, fresh.waitMedia(micID, 10, time.Minute))
			// The old session no longer hangs on alice's tracks: each feeds
			// the new session alone.
			for _, id := range []string{camID, micID} {
				if got := sinksOf(t, n, "conf-k", id); got != 1 {
					t.Errorf("track %s feeds %d down-tracks after the takeover, want 1", id, got)
				}
			}
		})
	}
}

// startsAtKeyframe checks that a subscriber's first video packet is a
// keyframe: it could not decode anything before one.
func startsAtKeyframe(t *testing.T, got []received, who string) {
	t.Helper()
	if len(got) == 0 || !isKeyframe(got[0].codec, got[0].payload) {
		t.Fatalf("%s: the first packet of the camera is not a keyframe", who)
	}
}

// TestSubscriberLeavesADroppedLayer: a browser's encoder stops sending an
// upper simulcast layer when its bandwidth or CPU runs short, and sends a
// keyframe only when asked. A subscriber receiving that layer, or starting
// on it (a user coming back, whose new session subscribes while the layer
// still looks live), must move to a layer still sent and be sent its
// keyframe: it must not wait for the dropped layer to come back.
func TestSubscriberLeavesADroppedLayer(t *testing.T) {
	n := newTestNode(t)
	const alice, bob = "alice@did:web:a.example", "bob@did:web:b.example"
	pub := connect(t, n, "conf-d", alice, clientOptions{})
	cam := &testTrack{tag: 'c', kind: "video", source: "camera", simulcast: true, keyframesOnRequest: true}
	pub.publish(cam)

	// 640×360 fits layer h of the 1280×720 camera.
	carol := connect(t, n, "conf-d", "carol@did:web:c.example", clientOptions{autoSubscribe: true, maxW: 640, maxH: 360})
	id := carol.waitTrackAdded(cam, alice)
	carol.waitLayer(cam, id, 'h', time.Minute)
	old := connect(t, n, "conf-d", bob, clientOptions{autoSubscribe: true, maxW: 640, maxH: 360})
	old.waitTrackAdded(cam, alice)
	old.waitLayer(cam, id, 'h', time.Minute)

	cam.dropped[1].Store(true)
	fresh := connect(t, n, "conf-d", bob, clientOptions{autoSubscribe: true, maxW: 640, maxH: 360})
	// The subscriber on h goes on with q, from a keyframe of q.
	carol.waitLayer(cam, id, 'q', time.Minute)
	// So does the user's new session, which started while h had just gone.
	if got := fresh.waitTrackAdded(cam, alice); got != id {
		t.Fatalf("the new session sees camera %s, want %s", got, id)
	}
	startsAtKeyframe(t, fresh.waitMedia(id, 1, time.Minute), "the new session")
	fresh.waitLayer(cam, id, 'q', time.Minute)
}

// sinksOf is how many down-tracks the track feeds.
func sinksOf(t *testing.T, n *testNode, conference, track string) int {
	t.Helper()
	return len(*trackOf(t, n, conference, track).sinks.Load())
}

// trackOf is the up-track of a conference on n.
func trackOf(t *testing.T, n *testNode, conference, track string) *upTrack {
	t.Helper()
	n.sfu.router.mu.Lock()
	conf := n.sfu.router.conferences[conference]
	n.sfu.router.mu.Unlock()
	up, ok := conf.track(track)
	if !ok {
		t.Fatalf("no track %s in %s", track, conference)
	}
	return up
}

// TestLostKeyframeRequestIsRepeated: a keyframe request can be lost on the
// way, and a browser's encoder ignores one that follows another within a
// few hundred milliseconds, whatever layer each was for; it sends no
// keyframe unless asked. A subscriber switching layers, and a user's new
// session starting on a camera, must still be sent a keyframe: the SFU
// asks again while it waits.
func TestLostKeyframeRequestIsRepeated(t *testing.T) {
	n := newTestNode(t)
	const alice, bob = "alice@did:web:a.example", "bob@did:web:b.example"
	pub := connect(t, n, "conf-l", alice, clientOptions{})
	cam := &testTrack{tag: 'c', kind: "video", source: "camera", simulcast: true, keyframesOnRequest: true}
	pub.publish(cam)

	old := connect(t, n, "conf-l", bob, clientOptions{})
	id := old.waitTrackAdded(cam, alice)
	old.subscribe(id, 640, 360)
	old.waitLayer(cam, id, 'h', time.Minute)
	// The tile turns out smaller: the switch to q asks for its keyframe,
	// and that request is lost.
	cam.losePLIs.Store(1)
	old.subscribe(id, 320, 180)
	old.waitLayer(cam, id, 'q', time.Minute)
	if cam.losePLIs.Load() != 0 {
		t.Fatal("no keyframe request was lost: the test proves nothing")
	}

	// Bob comes back once the last keyframe of q is too old to start from;
	// the request for the new session's keyframe is lost.
	up := trackOf(t, n, "conf-l", id)
	testwait.Until(t, minWait, func() bool {
		_, recent := up.RecentKeyframe(0, catchUpWindow)
		return !recent
	}, "keyframes of q keep coming unasked")
	cam.losePLIs.Store(1)
	fresh := connect(t, n, "conf-l", bob, clientOptions{autoSubscribe: true, maxW: 320, maxH: 180})
	if got := fresh.waitTrackAdded(cam, alice); got != id {
		t.Fatalf("the new session sees camera %s, want %s", got, id)
	}
	startsAtKeyframe(t, fresh.waitMedia(id, 1, time.Minute), "the new session")
	fresh.waitLayer(cam, id, 'q', time.Minute)
	if cam.losePLIs.Load() != 0 {
		t.Fatal("the new session's keyframe request was not lost: the test proves nothing")
	}
}
