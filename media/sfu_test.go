package media

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// checkExact asserts every received payload is byte-identical to one the
// publisher sent, and returns the sequence numbers seen per layer.
func checkExact(t *testing.T, tr *testTrack, got []received) map[byte][]uint32 {
	t.Helper()
	seqs := map[byte][]uint32{}
	for _, r := range got {
		tag, layer, seq, ok := parsePayload(r.payload)
		if !ok || tag != tr.tag {
			t.Fatalf("payload %x is not from track %c", r.payload, tr.tag)
		}
		sent, ok := tr.sentPayload(layer, seq)
		if !ok || !bytes.Equal(sent, r.payload) {
			t.Fatalf("payload %x differs from sent %x", r.payload, sent)
		}
		seqs[layer] = append(seqs[layer], seq)
	}
	return seqs
}

func TestForwardAudioAndVideoExactly(t *testing.T) {
	n := newTestNode(t)
	pub := connect(t, n, "conf-a", "alice@did:web:a.example", clientOptions{})
	sub := connect(t, n, "conf-a", "bob@did:web:b.example", clientOptions{autoSubscribe: true})
	audio := &testTrack{tag: 'a', kind: "audio", source: "microphone"}
	video := &testTrack{tag: 'v', kind: "video", source: "camera"}
	pub.publish(audio, video)
	pub.expect("publish_answer", 5*time.Second)
	audioID := sub.waitTrackAdded(audio, pub.user)
	videoID := sub.waitTrackAdded(video, pub.user)

	a := sub.waitMedia(audioID, 30, 15*time.Second)
	checkExact(t, audio, a)
	v := sub.waitMedia(videoID, 30, 15*time.Second)
	seqs := checkExact(t, video, v)
	if len(seqs) != 1 || len(seqs['-']) != 30 {
		t.Errorf("video layers received = %v, want only the single layer", seqs)
	}
	// Sequence numbers out of the SFU continue one by one, as sent.
	for i := 1; i < len(v); i++ {
		if v[i].seq != v[i-1].seq+1 {
			t.Fatalf("subscriber sequence jumps from %d to %d", v[i-1].seq, v[i].seq)
		}
	}
}

func TestEachReceivesExactlyTheOthersTracks(t *testing.T) {
	n := newTestNode(t)
	users := []string{"p1@did:web:a.example", "p2@did:web:b.example", "s1@did:web:a.example", "s2@did:web:b.example", "s3@did:web:c.example"}
	clients := make([]*testClient, len(users))
	for i, u := range users {
		clients[i] = connect(t, n, "conf-m", u, clientOptions{autoSubscribe: true})
	}
	t1 := &testTrack{tag: '1', kind: "audio", source: "microphone"}
	t2 := &testTrack{tag: '2', kind: "audio", source: "microphone"}
	clients[0].publish(t1)
	clients[1].publish(t2)
	id1 := clients[2].waitTrackAdded(t1, users[0])
	id2 := clients[2].waitTrackAdded(t2, users[1])
	want := map[string][]string{
		users[0]: {id2}, users[1]: {id1},
		users[2]: {id1, id2}, users[3]: {id1, id2}, users[4]: {id1, id2},
	}
	for _, c := range clients {
		for _, id := range want[c.user] {
			c.waitMedia(id, 10, 15*time.Second)
		}
	}
	for _, c := range clients {
		got := map[string]bool{}
		for _, r := range c.collect(300 * time.Millisecond) {
			got[r.track] = true
			tag, _, _, ok := parsePayload(r.payload)
			if !ok || (r.track == id1 && tag != '1') || (r.track == id2 && tag != '2') {
				t.Errorf("%s: payload %x on track %s", c.user, r.payload, r.track)
			}
		}
		if len(got) != len(want[c.user]) {
			t.Errorf("%s received tracks %v, want %v", c.user, got, want[c.user])
		}
		for _, id := range want[c.user] {
			if !got[id] {
				t.Errorf("%s does not receive %s", c.user, id)
			}
		}
	}
}

func TestConferenceIsolation(t *testing.T) {
	n := newTestNode(t)
	px := connect(t, n, "conf-x", "alice@did:web:a.example", clientOptions{})
	sx := connect(t, n, "conf-x", "bob@did:web:b.example", clientOptions{autoSubscribe: true})
	sy := connect(t, n, "conf-y", "carol@did:web:c.example", clientOptions{autoSubscribe: true})
	tr := &testTrack{tag: 'x', kind: "audio", source: "microphone"}
	px.publish(tr)
	id := sx.waitTrackAdded(tr, px.user)
	sx.waitMedia(id, 10, 15*time.Second)

	// Knowing the ID is not enough to subscribe from another conference.
	sy.subscribe(id, 0, 0)
	e := sy.expect("error", 5*time.Second)
	if e["code"] != codeUnknownTrack {
		t.Errorf("error code = %v, want %s", e["code"], codeUnknownTrack)
	}
	if got := sy.collect(500 * time.Millisecond); len(got) != 0 {
		t.Errorf("conference y received %d packets of conference x", len(got))
	}
	sy.mu.Lock()
	defer sy.mu.Unlock()
	for _, m := range sy.seen {
		if m["type"] == "track_added" || m["type"] == "participant_joined" {
			t.Errorf("conference y was told about conference x: %v", m)
		}
	}
}

func TestRecheckRemovesUser(t *testing.T) {
	n := newTestNode(t)
	pub := connect(t, n, "conf-r", "alice@did:web:a.example", clientOptions{})
	gone := connect(t, n, "conf-r", "mallory@did:web:b.example", clientOptions{autoSubscribe: true})
	stays := connect(t, n, "conf-r", "bob@did:web:b.example", clientOptions{autoSubscribe: true})
	tr := &testTrack{tag: 'r', kind: "audio", source: "microphone"}
	pub.publish(tr)
	id := gone.waitTrackAdded(tr, pub.user)
	gone.waitMedia(id, 10, 15*time.Second)
	stays.waitTrackAdded(tr, pub.user)
	stays.waitMedia(id, 10, 15*time.Second)

	n.membership.deny("conf-r", gone.user, ErrNotParticipant)
	n.sfu.Recheck("conf-r")
	removed := gone.expect("removed", 2*time.Second)
	if removed["reason"] != "removed" {
		t.Errorf("reason = %v, want removed", removed["reason"])
	}
	mediaStops(t, gone, id, tr, 50)
	left := stays.expect("participant_left", 2*time.Second)
	if left["user"] != gone.user {
		t.Errorf("participant_left user = %v", left["user"])
	}
	stays.waitMedia(id, 10, 5*time.Second)

	n.membership.deny("conf-r", pub.user, ErrConferenceEnded)
	n.sfu.Recheck("conf-r")
	if r := pub.expect("removed", 2*time.Second); r["reason"] != "ended" {
		t.Errorf("reason = %v, want ended", r["reason"])
	}
	if m := stays.expect("track_removed", 2*time.Second); m["track"] != id {
		t.Errorf("track_removed track = %v, want %s", m["track"], id)
	}
}

func TestServeSignalRefusesNonParticipant(t *testing.T) {
	n := newTestNode(t)
	n.membership.deny("conf-z", "eve@did:web:e.example", ErrNotParticipant)
	resp, err := http.Get(n.srv.URL + "/?conference=conf-z&user=eve@did:web:e.example")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status = %d, want 403", resp.StatusCode)
	}
}
