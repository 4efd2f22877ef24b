package media

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/entente-org/entente/internal/testwait"
)

// dataSession is a Session whose handler records the data messages and
// participants it hears of.
type dataSession struct {
	sess *Session
	data chan DataMessage
	seen chan string
}

func (d *dataSession) Joined(Participant, []Participant, []TrackInfo, []webrtc.ICEServer) {}
func (d *dataSession) PublishAnswer(string)                                               {}
func (d *dataSession) SubscribeOffer(string)                                              {}
func (d *dataSession) Candidate(string, webrtc.ICECandidateInit)                          {}
func (d *dataSession) Error(string, string)                                               {}
func (d *dataSession) Closed(string)                                                      {}
func (d *dataSession) Event(ev Event) {
	if ev.Kind == ParticipantJoined {
		d.seen <- ev.Participant.User
	}
}
func (d *dataSession) Data(m DataMessage) { d.data <- m }

func openDataSession(t *testing.T, n *cascadeNode, conference, user string) *dataSession {
	t.Helper()
	d := &dataSession{data: make(chan DataMessage, 64), seen: make(chan string, 64)}
	s, err := n.sfu.OpenSession(context.Background(), conference, Participant{User: user, DisplayName: user}, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	d.sess = s
	s.Join()
	return d
}

// waitSeen waits until d has heard of every user of users.
func (d *dataSession) waitSeen(t *testing.T, users ...string) {
	t.Helper()
	var seen []string
	testwait.Until(t, 20*time.Second, func() bool {
		for {
			select {
			case u := <-d.seen:
				seen = append(seen, u)
				continue
			default:
			}
			break
		}
		for _, u := range users {
			if !slices.Contains(seen, u) {
				return false
			}
		}
		return true
	}, "participants seen %v, want %v", seen, users)
}

func (d *dataSession) next(t *testing.T, who string) DataMessage {
	t.Helper()
	select {
	case m := <-d.data:
		return m
	case <-time.After(20 * time.Second):
		t.Fatalf("%s received no data message", who)
		return DataMessage{}
	}
}

func sameData(a, b DataMessage) bool {
	return a.From == b.From && a.Reliable == b.Reliable && string(a.Payload) == string(b.Payload) && slices.Equal(a.To, b.To)
}

// Data messages cross the trunks (spec/federation.md §10.4 `data`): to
// everyone or only to the users named, byte for byte, with the sender the
// SFU vouches for; a trunk's message from a participant it does not stand
// for is dropped, and the host keeps a member's data from the other members
// when that member does not allow relaying, as its media.
func TestDataMessagesAcrossTrunks(t *testing.T) {
	const conf = "conf-data"
	f := newFabric()
	a, b, c := f.node(t, "did:web:a", nil), f.node(t, "did:web:b", nil), f.node(t, "did:web:c", nil)
	f.hosts(conf, a)
	f.setRelay("did:web:b", false)
	ann := openDataSession(t, a, conf, "ann@did:web:a")
	bob := openDataSession(t, b, conf, "bob@did:web:b")
	cat := openDataSession(t, c, conf, "cat@did:web:c")
	ann.waitSeen(t, "bob@did:web:b", "cat@did:web:c")
	bob.waitSeen(t, "ann@did:web:a", "cat@did:web:c")
	cat.waitSeen(t, "ann@did:web:a")

	// From cat, who allows relaying, to everyone: both others, exact.
	payload := []byte{0, 1, 2, 0xff, 'x'}
	cat.sess.SendData(nil, true, payload)
	want := DataMessage{From: "cat@did:web:c", Reliable: true, Payload: payload}
	for _, r := range []struct {
		name string
		d    *dataSession
	}{{"ann", ann}, {"bob", bob}} {
		if got := r.d.next(t, r.name); !sameData(got, want) {
			t.Fatalf("%s received %+v, want %+v", r.name, got, want)
		}
	}
	// Addressed to bob only, then unreliable to everyone: ann's first is
	// the second.
	cat.sess.SendData([]string{"bob@did:web:b"}, true, []byte("for bob"))
	cat.sess.SendData(nil, false, []byte("lossy"))
	if got := bob.next(t, "bob"); !sameData(got, DataMessage{From: "cat@did:web:c", To: []string{"bob@did:web:b"}, Reliable: true, Payload: []byte("for bob")}) {
		t.Fatalf("bob received %+v", got)
	}
	if got := ann.next(t, "ann"); !sameData(got, DataMessage{From: "cat@did:web:c", Payload: []byte("lossy")}) {
		t.Fatalf("ann received %+v", got)
	}
	if got := bob.next(t, "bob"); string(got.Payload) != "lossy" {
		t.Fatalf("bob received %+v", got)
	}

	// B's trunk speaks for a participant of A: the host drops it.
	trunkOf(t, b, conf, "did:web:a").send(trunkDataMsg{From: "ann@did:web:a", Reliable: true, Payload: []byte("forged")})
	// Bob does not allow relaying: ann gets his data, cat does not.
	bob.sess.SendData(nil, true, []byte("secret"))
	if got := ann.next(t, "ann"); !sameData(got, DataMessage{From: "bob@did:web:b", Reliable: true, Payload: []byte("secret")}) {
		t.Fatalf("ann received %+v, want bob's secret (and never the forged message before it)", got)
	}
	ann.sess.SendData(nil, true, []byte("after"))
	if got := cat.next(t, "cat"); !sameData(got, DataMessage{From: "ann@did:web:a", Reliable: true, Payload: []byte("after")}) {
		t.Fatalf("cat received %+v, want ann's message and nothing of bob's", got)
	}
}
