package store_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

const hostDID = "did:web:ministry.example"

// putConference stores a conference with no records yet.
func putConference(t *testing.T, s store.Tx, id string, created time.Time) store.Conference {
	t.Helper()
	c := store.Conference{ID: id, Host: hostDID, Title: "Weekly " + id, CreatedBy: "alice@" + hostDID, CreatedAt: created}
	if err := s.PutConference(t.Context(), c); err != nil {
		t.Fatalf("PutConference(%s): %v", id, err)
	}
	return c
}

func TestConferences(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()

		if _, err := s.GetConference(ctx, "c-absent0000000000"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetConference of an absent conference: err = %v, want ErrNotFound", err)
		}
		older := putConference(t, s, "c-older00000000000", t0)
		newer := putConference(t, s, "c-newer00000000000", t0.Add(time.Hour))
		undated := putConference(t, s, "c-undated000000000", time.Time{})

		if got, err := s.GetConference(ctx, older.ID); err != nil || got != older {
			t.Errorf("GetConference = %+v, %v; want %+v", got, err, older)
		}

		older.Locked, older.Ended, older.HeadSeq, older.HeadHash, older.Title = true, true, 7, "ab12", "Renamed"
		if err := s.PutConference(ctx, older); err != nil {
			t.Fatalf("PutConference replace: %v", err)
		}
		if got, err := s.GetConference(ctx, older.ID); err != nil || got != older {
			t.Errorf("after replace GetConference = %+v, %v; want %+v", got, err, older)
		}

		list, err := s.ListConferences(ctx)
		if err != nil {
			t.Fatalf("ListConferences: %v", err)
		}
		if want := []store.Conference{newer, older, undated}; !slices.Equal(list, want) {
			t.Errorf("ListConferences = %+v, want newest first %+v", list, want)
		}
	})
}

func TestConferenceNodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		conf := putConference(t, s, "c-nodes00000000000", t0)
		other := putConference(t, s, "c-other00000000000", t0)

		agency := store.ConferenceNode{Conference: conf.ID, Node: "did:web:agency.example", State: store.NodeInvited,
			Users: []string{"bob", "carol"}}
		city := store.ConferenceNode{Conference: conf.ID, Node: "did:web:city.example", State: store.NodeInvited}
		elsewhere := store.ConferenceNode{Conference: other.ID, Node: "did:web:agency.example", State: store.NodeDeclined}
		for _, n := range []store.ConferenceNode{city, agency, elsewhere} {
			if err := s.PutConferenceNode(ctx, n); err != nil {
				t.Fatalf("PutConferenceNode(%s): %v", n.Node, err)
			}
		}
		if _, err := s.GetConferenceNode(ctx, conf.ID, "did:web:nobody.example"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetConferenceNode of an absent node: err = %v, want ErrNotFound", err)
		}
		if got, err := s.GetConferenceNode(ctx, conf.ID, agency.Node); err != nil || !reflect.DeepEqual(got, agency) {
			t.Errorf("GetConferenceNode = %+v, %v; want %+v", got, err, agency)
		}
		// An invitation naming no one reads back as no users, not as [].
		if got, err := s.GetConferenceNode(ctx, conf.ID, city.Node); err != nil || !reflect.DeepEqual(got, city) {
			t.Errorf("GetConferenceNode = %#v, %v; want %#v", got, err, city)
		}

		agency.State, agency.Users, agency.LastSentSeq = store.NodeAccepted, []string{"bob"}, 4
		if err := s.PutConferenceNode(ctx, agency); err != nil {
			t.Fatalf("PutConferenceNode replace: %v", err)
		}
		list, err := s.ListConferenceNodes(ctx, conf.ID)
		if err != nil {
			t.Fatalf("ListConferenceNodes: %v", err)
		}
		if want := []store.ConferenceNode{agency, city}; !reflect.DeepEqual(list, want) {
			t.Errorf("ListConferenceNodes = %+v, want %+v", list, want)
		}

		bad := city
		bad.State = "maybe"
		if err := s.PutConferenceNode(ctx, bad); err == nil {
			t.Error("PutConferenceNode with state \"maybe\" succeeded")
		}
		if got, err := s.GetConferenceNode(ctx, conf.ID, city.Node); err != nil || !reflect.DeepEqual(got, city) {
			t.Errorf("after the refused state, GetConferenceNode = %+v, %v; want %+v unchanged", got, err, city)
		}
	})
}

func TestParticipants(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		conf := putConference(t, s, "c-people0000000000", t0)

		bob := store.Participant{Conference: conf.ID, User: "bob@did:web:agency.example", Node: "did:web:agency.example",
			DisplayName: "Bob Martin", Organisation: "National Statistics Agency", JoinedSeq: 5, JoinEvent: "e5"}
		alice := store.Participant{Conference: conf.ID, User: "alice@" + hostDID, Node: hostDID,
			DisplayName: "Alice Durand", Organisation: "Ministry", JoinedSeq: 2, JoinEvent: "e2"}
		carol := store.Participant{Conference: conf.ID, User: "carol@" + hostDID, Node: hostDID,
			DisplayName: "Carol", Organisation: "Ministry", JoinedSeq: 9, JoinEvent: "e9"}
		for _, p := range []store.Participant{carol, bob, alice} {
			if err := s.PutParticipant(ctx, p); err != nil {
				t.Fatalf("PutParticipant(%s): %v", p.User, err)
			}
		}
		list, err := s.ListParticipants(ctx, conf.ID)
		if err != nil {
			t.Fatalf("ListParticipants: %v", err)
		}
		if want := []store.Participant{alice, bob, carol}; !slices.Equal(list, want) {
			t.Errorf("ListParticipants = %+v, want by JoinedSeq %+v", list, want)
		}

		// Rejoining replaces the entry and moves it in the order.
		alice.JoinedSeq, alice.JoinEvent, alice.DisplayName = 11, "e11", "Alice D."
		if err := s.PutParticipant(ctx, alice); err != nil {
			t.Fatalf("PutParticipant replace: %v", err)
		}
		if err := s.DeleteParticipant(ctx, conf.ID, bob.User); err != nil {
			t.Fatalf("DeleteParticipant: %v", err)
		}
		if err := s.DeleteParticipant(ctx, conf.ID, bob.User); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second DeleteParticipant: err = %v, want ErrNotFound", err)
		}
		list, err = s.ListParticipants(ctx, conf.ID)
		if err != nil {
			t.Fatalf("ListParticipants: %v", err)
		}
		if want := []store.Participant{carol, alice}; !slices.Equal(list, want) {
			t.Errorf("ListParticipants = %+v, want %+v", list, want)
		}
		if list, err := s.ListParticipants(ctx, "c-absent0000000000"); err != nil || len(list) != 0 {
			t.Errorf("ListParticipants of an unknown conference = %v, %v; want none", list, err)
		}
	})
}

func TestCountHostedConferences(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		const member, otherMember = "did:web:agency.example", "did:web:city.example"
		// One conference per state of the member, one that ended, one of
		// another host, and one that invites only another member.
		for _, c := range []struct {
			id, host, state string
			ended           bool
			node            string
		}{
			{"c-invited1000000000", hostDID, store.NodeInvited, false, member},
			{"c-invited2000000000", hostDID, store.NodeInvited, false, member},
			{"c-accepted000000000", hostDID, store.NodeAccepted, false, member},
			{"c-declined000000000", hostDID, store.NodeDeclined, false, member},
			{"c-ended000000000000", hostDID, store.NodeInvited, true, member},
			{"c-elsewhere00000000", "did:web:region.example", store.NodeInvited, false, member},
			{"c-notours0000000000", hostDID, store.NodeInvited, false, otherMember},
		} {
			conf := store.Conference{ID: c.id, Host: c.host, Title: c.id, CreatedBy: "alice@" + c.host, CreatedAt: t0, Ended: c.ended}
			if err := s.PutConference(ctx, conf); err != nil {
				t.Fatal(err)
			}
			if err := s.PutConferenceNode(ctx, store.ConferenceNode{Conference: c.id, Node: c.node, State: c.state}); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			host, member string
			want         store.HostedCount
		}{
			{hostDID, member, store.HostedCount{Live: 3, Invited: 2}},
			{hostDID, otherMember, store.HostedCount{Live: 1, Invited: 1}},
			{"did:web:region.example", member, store.HostedCount{Live: 1, Invited: 1}},
			{"did:web:nobody.example", member, store.HostedCount{}},
		} {
			if got, err := s.CountHostedConferences(ctx, c.host, c.member); err != nil || got != c.want {
				t.Errorf("CountHostedConferences(%s, %s) = %+v, %v; want %+v", c.host, c.member, got, err, c.want)
			}
		}
	})
}
