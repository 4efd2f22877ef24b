package store_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

func TestActivity(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()

		empty, err := s.Activity(ctx, hostDID)
		if err != nil {
			t.Fatalf("Activity on an empty store: %v", err)
		}
		want := store.Activity{Outbox: map[string]int64{"pending": 0, "delivered": 0, "failed": 0, "expired": 0}}
		if !reflect.DeepEqual(empty, want) {
			t.Fatalf("Activity on an empty store = %+v, want %+v", empty, want)
		}

		putConference(t, s, "c1", t0)
		putConference(t, s, "c2", t0)
		ended := store.Conference{ID: "c3", Host: hostDID, Title: "Ended", CreatedBy: "alice@" + hostDID, Ended: true}
		remote := store.Conference{ID: "r1", Host: "did:web:agency.example", Title: "Theirs", CreatedBy: "bob@did:web:agency.example"}
		for _, c := range []store.Conference{ended, remote} {
			if err := s.PutConference(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range []store.Participant{
			{Conference: "c1", User: "alice@" + hostDID, Node: hostDID, JoinedSeq: 1},
			{Conference: "c1", User: "carol@did:web:city.example", Node: "did:web:city.example", JoinedSeq: 2, Waiting: true},
			{Conference: "r1", User: "bob@did:web:agency.example", Node: "did:web:agency.example", JoinedSeq: 1},
			{Conference: "c3", User: "dave@" + hostDID, Node: hostDID, JoinedSeq: 1}, // ended: not counted
		} {
			if err := s.PutParticipant(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		older := message("m1", toAgency, t0)
		older.CreatedAt = t0.Add(-time.Minute)
		enqueue(t, s, older)
		enqueue(t, s, message("m2", toAgency, t0))
		d := enqueue(t, s, message("m3", toCity, t0))
		f := enqueue(t, s, message("m4", toCity, t0))
		if err := s.MarkOutboxDelivered(ctx, lease(t, s, toCity), d.ID, []byte("receipt"), t0); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkOutboxFinal(ctx, lease(t, s, toCity), f.ID, store.OutboxFailed, "refused"); err != nil {
			t.Fatal(err)
		}

		got, err := s.Activity(ctx, hostDID)
		if err != nil {
			t.Fatalf("Activity: %v", err)
		}
		want = store.Activity{
			HostedConferences: 2, MemberConferences: 1,
			Participants: 3, Waiting: 1,
			Outbox:        map[string]int64{"pending": 2, "delivered": 1, "failed": 1, "expired": 0},
			OldestPending: t0.Add(-time.Minute),
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Activity = %+v, want %+v", got, want)
		}
	})
}
