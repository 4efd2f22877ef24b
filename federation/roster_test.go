package federation_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// rosterCall is a conference hosted by the ministry (a) with the agency (b)
// taking part, alice and bruno in it, and a city (c) that every node
// trusts but that was never invited.
type rosterCall struct {
	f          *nodetest.Federation
	a, b, c    *nodetest.Node
	brunoToken string
	conference string
	bLog       *logRecords // what the agency logs
}

func newRosterCall(t *testing.T) *rosterCall {
	t.Helper()
	f := nodetest.New(t)
	rc := &rosterCall{f: f, a: f.Start(t, "Ministry", nil), bLog: &logRecords{}}
	f.Logger = slog.New(rc.bLog)
	rc.b = f.Start(t, "Agency", nil)
	f.Logger = nil
	rc.c = f.Start(t, "City", nil)
	a, b := rc.a, rc.b
	nodetest.Trust(t, a, b, rc.c)
	ctx := context.Background()
	alice, _ := nodetest.User(t, a, "alice", "Alice")
	var bruno localuser.User
	bruno, rc.brunoToken = nodetest.User(t, b, "bruno", "Bruno")
	conf := invitedConference(t, a, alice, "Roster", b)
	rc.conference = conf.ID
	nodetest.Eventually(t, wait, "the invitation at the agency", func() bool {
		inv, _ := b.Federation().Invitations(ctx, bruno)
		return len(inv) == 1
	})
	if _, _, err := b.Federation().Answer(ctx, bruno, conf.ID, true); err != nil {
		t.Fatal(err)
	}
	for _, j := range []struct {
		n *nodetest.Node
		u localuser.User
	}{{a, alice}, {b, bruno}} {
		if _, _, err := j.n.Federation().Join(ctx, j.u, conf.ID); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, wait, "both participants in the agency's replica", func() bool {
		v, _ := b.Federation().ConferenceDetail(ctx, conf.ID)
		return len(v.Participants) == 2
	})
	return rc
}

// A member node shows only the participants whose join it verified in its
// own replica (spec §7): a host that lists a user of a third organisation
// who never joined, or rewrites what a participant's node signed, is not
// believed, and the member's replica stays as it was.
func TestMemberShowsOnlyVerifiedRoster(t *testing.T) {
	rc := newRosterCall(t)
	a, b, c := rc.a, rc.b, rc.c
	ctx := context.Background()

	// The host's store, as a dishonest host would keep it: a city user in
	// the call and another in the lobby, neither of whom ever joined, and
	// the agency's participant renamed.
	parts, err := a.Store().ListParticipants(ctx, rc.conference)
	if err != nil || len(parts) != 2 {
		t.Fatalf("host participants %+v, %v", parts, err)
	}
	conf, err := a.Store().GetConference(ctx, rc.conference)
	if err != nil {
		t.Fatal(err)
	}
	forged := []store.Participant{
		{Conference: rc.conference, User: "mallory@" + c.DID(), Node: c.DID(), DisplayName: "Mallory",
			Organisation: "City", JoinedSeq: conf.HeadSeq, JoinEvent: fmt.Sprintf("%064x", 1)},
		{Conference: rc.conference, User: "eve@" + c.DID(), Node: c.DID(), DisplayName: "Eve",
			Organisation: "City", JoinedSeq: conf.HeadSeq, JoinEvent: fmt.Sprintf("%064x", 2), Waiting: true},
	}
	for _, p := range parts {
		if p.Node == b.DID() {
			p.DisplayName, p.Organisation = "Bruno, the minister", "Ministry"
			forged = append(forged, p)
		}
	}
	for _, p := range forged {
		if err := a.Store().PutParticipant(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// The host's signed roster does say so.
	host, err := a.Federation().LocalRoster(ctx, rc.conference)
	if err != nil || len(host.Participants) != 3 || len(host.Lobby) != 1 {
		t.Fatalf("the host's roster %+v, %v", host, err)
	}

	replicaBefore := snapshot(t, b)
	var got federation.Roster
	clientFor(t, rc.f, b, rc.brunoToken).must(http.StatusOK, "GET", "/conferences/"+rc.conference+"/participants", nil, &got)

	replica, err := b.Store().ListParticipants(ctx, rc.conference)
	if err != nil || len(replica) != 2 {
		t.Fatalf("agency replica %+v, %v", replica, err)
	}
	want := []federation.RosterMember{}
	for _, p := range replica {
		want = append(want, federation.RosterMember{User: p.User, DisplayName: p.DisplayName, Organisation: p.Organisation,
			Node: p.Node, JoinedSeq: p.JoinedSeq, JoinEvent: p.JoinEvent})
	}
	if fmt.Sprint(got.Participants) != fmt.Sprint(want) || len(got.Lobby) != 0 || got.Head != host.Head {
		t.Errorf("the agency shows participants %+v, lobby %+v, head %+v;\nwant %+v, no lobby, head %+v",
			got.Participants, got.Lobby, got.Head, want, host.Head)
	}
	for _, p := range got.Participants {
		if p.User == "bruno@"+b.DID() && (p.DisplayName != "Bruno" || p.Organisation != "Agency") {
			t.Errorf("bruno shown as %+v, not as his node signed him", p)
		}
	}
	// Each entry dropped is logged, with why.
	dropped := map[string]string{}
	for _, r := range rc.bLog.with("roster entry dropped") {
		if r["conference"] != rc.conference || r["peer"] != a.DID() {
			t.Errorf("drop logged as %v", r)
		}
		dropped[r["user"]] = r["reason"]
	}
	if len(dropped) != 2 || dropped["mallory@"+c.DID()] != "no verified join in this node's replica" ||
		dropped["eve@"+c.DID()] != "no verified join in this node's replica" {
		t.Errorf("drops logged: %v", dropped)
	}
	if after := snapshot(t, b); after != replicaBefore {
		t.Errorf("the agency's store changed:\nbefore:\n%s\nafter:\n%s", replicaBefore, after)
	}
}
