package media

import (
	"testing"
	"time"
)

// awaitMsg waits for a message matching ok among those c received after the
// first skip of c.seen, and returns it with the index after it.
func (c *testClient) awaitMsg(skip int, what string, timeout time.Duration, ok func(map[string]any) bool) (map[string]any, int) {
	c.t.Helper()
	timeout = max(timeout, minWait)
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		for i := skip; i < len(c.seen); i++ {
			if ok(c.seen[i]) {
				m := c.seen[i]
				c.mu.Unlock()
				return m, i + 1
			}
		}
		c.mu.Unlock()
		select {
		case m, open := <-c.msgs:
			if !open {
				c.t.Fatalf("%s: connection closed while waiting for %s", c.user, what)
			}
			c.mu.Lock()
			c.seen = append(c.seen, m)
			c.mu.Unlock()
		case <-deadline:
			c.t.Fatalf("%s: no %s within %v", c.user, what, timeout)
		}
	}
}

// seenCount is how many messages c has looked at so far.
func (c *testClient) seenCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// countOf counts the packets of track among rs.
func countOf(rs []received, track string) int {
	n := 0
	for _, r := range rs {
		if r.track == track {
			n++
		}
	}
	return n
}

// A member that stops allowing relay during a call: the host withdraws its
// tracks from the other members' trunks at once, marks its participants as
// withheld there, and offers them again when the permission comes back.
func TestCascadeRelayPolicyChangedDuringCall(t *testing.T) {
	a, b, c := threeNodes(t, "conf-live")
	pub := connect(t, b.testNode, "conf-live", "bob@did:web:b", clientOptions{})
	onA := connect(t, a.testNode, "conf-live", "ann@did:web:a", clientOptions{autoSubscribe: true})
	onC := connect(t, c.testNode, "conf-live", "cat@did:web:c", clientOptions{autoSubscribe: true})
	video := &testTrack{tag: 'v', kind: "video", source: "camera"}
	pub.publish(video)
	id := onC.waitTrackAdded(video, pub.user)
	checkExact(t, video, onC.waitMedia(id, 30, 20*time.Second))
	onA.waitMedia(onA.waitTrackAdded(video, pub.user), 10, 20*time.Second)
	joined, _ := onC.awaitMsg(0, "bob's participant_joined", 10*time.Second, func(m map[string]any) bool {
		return m["type"] == "participant_joined" && m["user"] == pub.user
	})
	if _, marked := joined["media_withheld"]; marked {
		t.Fatalf("participant_joined on C while B allows relay = %v, want no media_withheld", joined)
	}
	toC := trunkOf(t, a, "conf-live", "did:web:c")
	mark := onC.seenCount()

	a.f.setRelay("did:web:b", false)
	changed := time.Now()
	onC.awaitMsg(mark, "track_removed of bob's video", 10*time.Second, func(m map[string]any) bool {
		return m["type"] == "track_removed" && m["track"] == id
	})
	upd, _ := onC.awaitMsg(mark, "participant_updated of bob", 10*time.Second, func(m map[string]any) bool {
		return m["type"] == "participant_updated" && m["user"] == pub.user
	})
	t.Logf("C told of the withdrawal %s after the change", time.Since(changed).Round(time.Millisecond))
	want := map[string]any{"type": "participant_updated", "user": pub.user, "display_name": "Name of " + pub.user,
		"organisation": "org did:web:b", "media_withheld": true}
	if !sameMessage(upd, want) {
		t.Fatalf("participant_updated on C = %v, want %v", upd, want)
	}
	// The host no longer sends the track to C, and C's client gets none of
	// it; A's own client still does.
	trunkStops(t, toC, id, video, 50)
	mediaStops(t, onC, id, video, 100)
	onA.waitMedia(onA.waitTrackAdded(video, pub.user), 20, 10*time.Second)
	// A client joining C now learns the marking with the participant list.
	late := connect(t, c.testNode, "conf-live", "cid@did:web:c", clientOptions{autoSubscribe: true})
	lateJoined, _ := late.awaitMsg(0, "joined", time.Second, func(m map[string]any) bool { return m["type"] == "joined" })
	var bob map[string]any
	for _, p := range lateJoined["participants"].([]any) {
		if p := p.(map[string]any); p["user"] == pub.user {
			bob = p
		}
	}
	if bob == nil || bob["media_withheld"] != true {
		t.Fatalf("joined.participants on C = %v, want bob with media_withheld true", lateJoined["participants"])
	}
	for _, tr := range lateJoined["tracks"].([]any) {
		if tr.(map[string]any)["owner"] == pub.user {
			t.Fatalf("joined.tracks on C lists B's track while withheld: %v", tr)
		}
	}

	mark = onC.seenCount()
	a.f.setRelay("did:web:b", true)
	upd, _ = onC.awaitMsg(mark, "participant_updated of bob", 10*time.Second, func(m map[string]any) bool {
		return m["type"] == "participant_updated" && m["user"] == pub.user
	})
	delete(want, "media_withheld")
	if !sameMessage(upd, want) {
		t.Fatalf("participant_updated on C after relay is allowed again = %v, want %v", upd, want)
	}
	onC.awaitMsg(mark, "track_added of bob's video", 10*time.Second, func(m map[string]any) bool {
		return m["type"] == "track_added" && m["id"] == id && m["owner"] == pub.user
	})
	checkExact(t, video, onC.waitMedia(id, 30, 20*time.Second))
}

func sameMessage(got, want map[string]any) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// Only the host says whose media is withheld: a member that marks its own
// participant so, joining or updating it, changes nothing at the host, and
// the host's clients hear nothing of it.
func TestMemberCannotMarkMediaWithheld(t *testing.T) {
	a, b := twoNodes(t, "conf-mark")
	onA := connect(t, a.testNode, "conf-mark", "ann@did:web:a", clientOptions{})
	connect(t, b.testNode, "conf-mark", "bob@did:web:b", clientOptions{})
	onA.awaitMsg(0, "bob's participant_joined", 10*time.Second, func(m map[string]any) bool {
		return m["type"] == "participant_joined" && m["user"] == "bob@did:web:b"
	})
	fromB := trunkOf(t, a, "conf-mark", "did:web:b")
	mark := onA.seenCount()
	for _, msg := range []string{
		`{"type":"participant_updated","participant":{"user":"bob@did:web:b","display_name":"Name of bob@did:web:b","organisation":"org did:web:b","media_withheld":true}}`,
		`{"type":"participant_joined","participant":{"user":"bob@did:web:b","display_name":"Name of bob@did:web:b","organisation":"org did:web:b","media_withheld":true}}`,
		`{"type":"state","participants":[{"user":"bob@did:web:b","display_name":"Name of bob@did:web:b","organisation":"org did:web:b","media_withheld":true}],"tracks":[]}`,
	} {
		fromB.handleControl([]byte(msg))
	}
	p, ok := fromB.conf.participant("bob@did:web:b")
	if !ok || p.MediaWithheld {
		t.Fatalf("bob at the host after the member marked him = %+v (present %t), want present and not withheld", p, ok)
	}
	onA.collect(500 * time.Millisecond)
	onA.mu.Lock()
	for drained := false; !drained; {
		select {
		case m := <-onA.msgs:
			onA.seen = append(onA.seen, m)
		default:
			drained = true
		}
	}
	defer onA.mu.Unlock()
	for _, m := range onA.seen[mark:] {
		if m["type"] == "participant_updated" || m["type"] == "participant_left" {
			t.Fatalf("the host's client heard %v after the member's claims", m)
		}
	}
}
