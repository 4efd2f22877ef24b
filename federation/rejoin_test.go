package federation_test

import (
	"strings"
	"testing"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/nodetest"
)

// TestRejoinTakesOverOwnPlace: a participant whose browser reloaded or
// crashed joins again without having left. The join is a rejoin (spec
// §6.1): accepted on the host for its own user and, across organisations,
// for a remote one, also once the conference is locked and while its lobby
// is on; the user keeps one place, admitted as before. A newcomer is still
// refused by the lock, and someone waiting in the lobby who joins again
// keeps waiting.
func TestRejoinTakesOverOwnPlace(t *testing.T) {
	f, a, b := twoNodes(t)
	_, tokA := nodetest.User(t, a, "alice", "Alice")
	_, tokB := nodetest.User(t, b, "bruno", "Bruno")
	_, tokD := nodetest.User(t, b, "dora", "Dora")
	_, tokE := nodetest.User(t, b, "emile", "Émile")
	alice, bruno, dora, emile := clientFor(t, f, a, tokA), clientFor(t, f, b, tokB), clientFor(t, f, b, tokD), clientFor(t, f, b, tokE)

	var conf federation.ConferenceView
	alice.must(201, "POST", "/conferences", map[string]any{"title": "Comité", "lobby": true}, &conf)
	alice.must(201, "POST", "/conferences/"+conf.ID+"/invitations", map[string]any{"node": b.DID()}, nil)
	nodetest.Eventually(t, wait, "the invitation", func() bool {
		var inv []federation.Invitation
		bruno.must(200, "GET", "/invitations", nil, &inv)
		return len(inv) == 1
	})
	bruno.must(200, "POST", "/invitations/"+conf.ID+"/accept", nil, nil)
	alice.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil)
	bruno.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil) // knocks
	dora.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil)  // knocks
	alice.must(200, "POST", "/conferences/"+conf.ID+"/admit", map[string]string{"user": "bruno@" + b.DID()}, nil)
	nodetest.Eventually(t, wait, "the admission at the agency", func() bool {
		v := bruno.conference(conf.ID)
		return len(v.Participants) == 2
	})
	alice.must(200, "POST", "/conferences/"+conf.ID+"/lock", nil, nil)
	nodetest.Eventually(t, wait, "the lock at the agency", func() bool {
		return bruno.conference(conf.ID).Locked
	})

	// Each comes back without having left: the host's user, the admitted
	// remote user (whose node knocks, the lobby being on) and the one who
	// waits. All are accepted while the conference is locked.
	alice.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil)
	bruno.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil)
	dora.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil)
	// A newcomer is refused by the lock, as before.
	if status, raw := emile.do("POST", "/conferences/"+conf.ID+"/join", nil, nil); status != 403 || !strings.Contains(raw, "is locked") {
		t.Fatalf("newcomer in a locked conference: %d %s", status, raw)
	}

	want := func(v federation.ConferenceView) string {
		var in, waiting []string
		for _, p := range v.Participants {
			in = append(in, p.User)
		}
		for _, p := range v.Waiting {
			waiting = append(waiting, p.User)
		}
		return "in " + strings.Join(in, ",") + "; waiting " + strings.Join(waiting, ",")
	}
	exp := "in alice@" + a.DID() + ",bruno@" + b.DID() + "; waiting dora@" + b.DID()
	if got := want(alice.conference(conf.ID)); got != exp {
		t.Fatalf("host roster after the rejoins: %s, want %s", got, exp)
	}
	nodetest.Eventually(t, wait, "the agency's replica of the rejoins", func() bool {
		return want(bruno.conference(conf.ID)) == exp && bruno.conference(conf.ID).Head.Seq == alice.conference(conf.ID).Head.Seq
	})
	if err := b.Federation().MayParticipate(t.Context(), conf.ID, "bruno@"+b.DID()); err != nil {
		t.Fatalf("the rejoined remote participant may not take part: %v", err)
	}
	if err := a.Federation().MayParticipate(t.Context(), conf.ID, "dora@"+b.DID()); !isStatus(err, 403) {
		t.Fatalf("the rejoined waiting user may take part: %v", err)
	}

	var rep federation.AuditReport
	bruno.must(200, "GET", "/conferences/"+conf.ID+"/events", nil, &rep)
	types := []string{}
	for _, e := range rep.Entries {
		types = append(types, e.Type)
	}
	log := "conference.create conference.invite conference.accept participant.join participant.knock participant.knock participant.admit conference.lock participant.join participant.knock participant.knock"
	if !rep.Valid || strings.Join(types, " ") != log {
		t.Fatalf("log %v valid=%v, want %s", types, rep.Valid, log)
	}
}
