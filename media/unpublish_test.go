package media

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// renegotiate sends a new publish offer announcing no new track, and waits
// for its answer.
func (c *testClient) renegotiate(tracks []map[string]any) map[string]any {
	c.t.Helper()
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pub)
	if err := c.pub.SetLocalDescription(offer); err != nil {
		c.t.Fatal(err)
	}
	<-gathered
	c.send(map[string]any{"type": "publish_offer", "sdp": c.pub.LocalDescription().SDP, "tracks": tracks})
	return c.waitMessage("publish_answer", anyMessage, 5*time.Second)
}

// Stopping a screen share withdraws that one track, here and across the
// trunk: subscribers are told and its media stops, while the camera goes
// on, also after the publisher renegotiates without it. The retired
// m-section cannot carry a track again, and only one's own track can be
// withdrawn.
func TestUnpublishOneTrack(t *testing.T) {
	a, b := twoNodes(t, "conf-unpub")
	pub := connect(t, b.testNode, "conf-unpub", "bob@did:web:b", clientOptions{})
	local := connect(t, b.testNode, "conf-unpub", "bea@did:web:b", clientOptions{autoSubscribe: true})
	remote := connect(t, a.testNode, "conf-unpub", "ann@did:web:a", clientOptions{autoSubscribe: true})
	camera := &testTrack{tag: 'c', kind: "video", source: "camera"}
	screen := &testTrack{tag: 's', kind: "video", source: "screen"}
	pub.publish(camera, screen)
	subs := []*testClient{local, remote}
	screenID := local.waitTrackAdded(screen, pub.user)
	cameraID := local.waitTrackAdded(camera, pub.user)
	for _, sub := range subs {
		checkExact(t, screen, sub.waitMedia(sub.waitTrackAdded(screen, pub.user), 20, 20*time.Second))
	}

	// Someone else's track cannot be withdrawn.
	local.send(map[string]any{"type": "unpublish", "track": screenID})
	if m := local.waitMessage("error", anyMessage, 5*time.Second); m["code"] != "unknown_track" {
		t.Fatalf("unpublishing another's track: %v, want unknown_track", m)
	}

	pub.send(map[string]any{"type": "unpublish", "track": screenID})
	for _, sub := range subs {
		sub.waitMessage("track_removed", func(m map[string]any) bool { return m["track"] == screenID }, 5*time.Second)
	}
	for _, sub := range subs {
		sub.collect(300 * time.Millisecond) // what was already on its way
		got := sub.collect(time.Second)
		cameraPackets := 0
		for _, r := range got {
			if r.track == screenID {
				t.Fatalf("%s: screen media after unpublish", sub.user)
			}
			if r.track == cameraID {
				cameraPackets++
			}
		}
		if cameraPackets < 20 {
			t.Fatalf("%s: %d camera packets in a second after the screen stopped, want about 100", sub.user, cameraPackets)
		}
	}

	// The publisher drops the sender and renegotiates; the camera goes on.
	if err := pub.pub.RemoveTrack(screen.sender); err != nil {
		t.Fatal(err)
	}
	pub.renegotiate([]map[string]any{})
	for _, sub := range subs {
		checkExact(t, camera, sub.waitMedia(cameraID, 30, 10*time.Second))
	}
	// Announcing a track on the retired m-section is refused.
	pub.send(map[string]any{"type": "publish_offer", "sdp": pub.pub.LocalDescription().SDP,
		"tracks": []map[string]any{{"mid": screen.mid, "kind": "video", "source": "screen"}}})
	if m := pub.waitMessage("error", anyMessage, 5*time.Second); m["code"] != "bad_request" {
		t.Fatalf("reusing a retired m-section: %v, want bad_request", m)
	}
	// A track that is gone cannot be withdrawn twice.
	pub.send(map[string]any{"type": "unpublish", "track": screenID})
	pub.waitMessage("error", func(m map[string]any) bool { return m["code"] == "unknown_track" }, 5*time.Second)
}
