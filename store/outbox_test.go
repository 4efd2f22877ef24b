package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

const (
	toAgency = "did:web:agency.example"
	toCity   = "did:web:city.example"
)

func enqueue(t *testing.T, s store.Tx, m store.OutboxMessage) store.OutboxMessage {
	t.Helper()
	id, err := s.EnqueueOutbox(t.Context(), m)
	if err != nil {
		t.Fatalf("EnqueueOutbox(%s): %v", m.MessageID, err)
	}
	m.ID, m.State = id, store.OutboxPending
	return m
}

func message(id, destination string, next time.Time) store.OutboxMessage {
	return store.OutboxMessage{MessageID: id, Destination: destination, Body: []byte(`{"v":1,"payload":"` + id + `"}`),
		CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour), NextAttempt: next}
}

// holder is the process that delivers in the tests of a single deliverer.
const holder = "node-1"

// lease takes holder's lease on destination, until long after every time
// the tests use.
func lease(t *testing.T, s store.Tx, destination string) store.OutboxLease {
	t.Helper()
	l, err := s.TakeOutboxLease(t.Context(), destination, holder, t0, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatalf("TakeOutboxLease(%s): %v", destination, err)
	}
	return l
}

func ids(ms []store.OutboxMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.MessageID)
	}
	return out
}

func TestDueOutboxHeadOfLine(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		now := t0.Add(time.Minute)

		// agency's head waits for a retry; the due message behind it must wait too.
		enqueue(t, s, message("a1", toAgency, now.Add(time.Second)))
		enqueue(t, s, message("a2", toAgency, now.Add(-time.Second)))
		c1 := enqueue(t, s, message("c1", toCity, now))
		enqueue(t, s, message("c2", toCity, now.Add(-time.Hour)))
		enqueue(t, s, message("g1", "did:web:gov.example", now.Add(-time.Millisecond)))

		due, err := s.DueOutbox(ctx, now, holder, 0)
		if err != nil {
			t.Fatalf("DueOutbox: %v", err)
		}
		if got, want := ids(due), []string{"c1", "g1"}; !reflect.DeepEqual(got, want) {
			t.Errorf("DueOutbox(now) = %v, want %v", got, want)
		}
		if len(due) > 0 && !reflect.DeepEqual(due[0], c1) {
			t.Errorf("DueOutbox()[0] = %+v, want %+v", due[0], c1)
		}
		if due, err := s.DueOutbox(ctx, now, holder, 1); err != nil || !reflect.DeepEqual(ids(due), []string{"c1"}) {
			t.Errorf("DueOutbox(now, limit 1) = %v, %v; want [c1]", ids(due), err)
		}
		if wake, err := s.NextOutboxWake(ctx, now, holder); err != nil || !wake.Equal(now.Add(-time.Millisecond)) {
			t.Errorf("NextOutboxWake = %v, %v; want %v", wake, err, now.Add(-time.Millisecond))
		}

		// Once a head is done, the next message of its destination is the head.
		if err := s.MarkOutboxDelivered(ctx, lease(t, s, toCity), c1.ID, []byte(`{"receipt":1}`), now); err != nil {
			t.Fatalf("MarkOutboxDelivered: %v", err)
		}
		if err := s.MarkOutboxFinal(ctx, lease(t, s, "did:web:gov.example"), due[1].ID, store.OutboxFailed, "403 forbidden"); err != nil {
			t.Fatalf("MarkOutboxFinal: %v", err)
		}
		if due, err := s.DueOutbox(ctx, now, holder, 0); err != nil || !reflect.DeepEqual(ids(due), []string{"c2"}) {
			t.Errorf("after c1 and g1 ended, DueOutbox = %v, %v; want [c2]", ids(due), err)
		}
		if due, err := s.DueOutbox(ctx, now.Add(time.Second), holder, 0); err != nil || !reflect.DeepEqual(ids(due), []string{"a1", "c2"}) {
			t.Errorf("a second later, DueOutbox = %v, %v; want [a1 c2]", ids(due), err)
		}
		if wake, err := s.NextOutboxWake(ctx, now, holder); err != nil || !wake.Equal(now.Add(-time.Hour)) {
			t.Errorf("NextOutboxWake = %v, %v; want %v", wake, err, now.Add(-time.Hour))
		}
	})
}

func TestOutboxLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		now := t0

		if wake, err := s.NextOutboxWake(ctx, now, holder); err != nil || !wake.IsZero() {
			t.Errorf("NextOutboxWake of an empty outbox = %v, %v; want the zero time", wake, err)
		}

		// State is forced to pending and the receipt dropped; a zero
		// NextAttempt means due from creation.
		in := message("m1", toAgency, time.Time{})
		in.State, in.Receipt, in.DeliveredAt = store.OutboxDelivered, []byte("forged"), t0
		m1 := enqueue(t, s, in)
		m1.NextAttempt, m1.Receipt, m1.DeliveredAt = t0, nil, time.Time{}
		m2 := enqueue(t, s, message("m2", toAgency, t0))
		m3 := enqueue(t, s, message("m3", toCity, t0))
		if !(m1.ID < m2.ID && m2.ID < m3.ID) {
			t.Fatalf("IDs %d, %d, %d are not increasing", m1.ID, m2.ID, m3.ID)
		}
		got, err := s.ListOutbox(ctx, toAgency, "")
		if err != nil {
			t.Fatalf("ListOutbox: %v", err)
		}
		if want := []store.OutboxMessage{m1, m2}; !reflect.DeepEqual(got, want) {
			t.Errorf("ListOutbox(agency) = %+v, want %+v", got, want)
		}

		agency, city := lease(t, s, toAgency), lease(t, s, toCity)
		if err := s.MarkOutboxRetry(ctx, agency, m1.ID, 1, t0.Add(2*time.Second), "connection refused"); err != nil {
			t.Fatalf("MarkOutboxRetry: %v", err)
		}
		m1.Attempts, m1.NextAttempt, m1.LastError = 1, t0.Add(2*time.Second), "connection refused"
		receipt := []byte(`{"v":1,"payload":"receipt"}`)
		if err := s.MarkOutboxDelivered(ctx, agency, m1.ID, receipt, t0.Add(3*time.Second)); err != nil {
			t.Fatalf("MarkOutboxDelivered: %v", err)
		}
		m1.State, m1.Receipt, m1.DeliveredAt, m1.LastError = store.OutboxDelivered, receipt, t0.Add(3*time.Second), ""
		if err := s.MarkOutboxFinal(ctx, city, m3.ID, store.OutboxExpired, "expired after 24h"); err != nil {
			t.Fatalf("MarkOutboxFinal: %v", err)
		}
		m3.State, m3.LastError = store.OutboxExpired, "expired after 24h"

		lists := []struct {
			destination, state string
			want               []store.OutboxMessage
		}{
			{"", "", []store.OutboxMessage{m1, m2, m3}},
			{toAgency, store.OutboxDelivered, []store.OutboxMessage{m1}},
			{"", store.OutboxPending, []store.OutboxMessage{m2}},
			{toCity, "", []store.OutboxMessage{m3}},
			{toCity, store.OutboxPending, nil},
		}
		for _, tt := range lists {
			got, err := s.ListOutbox(ctx, tt.destination, tt.state)
			if err != nil {
				t.Fatalf("ListOutbox(%q, %q): %v", tt.destination, tt.state, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ListOutbox(%q, %q) = %+v, want %+v", tt.destination, tt.state, got, tt.want)
			}
		}
		counts := map[string]int64{"": 3, store.OutboxPending: 1, store.OutboxDelivered: 1, store.OutboxExpired: 1, store.OutboxFailed: 0}
		for state, want := range counts {
			if n, err := s.CountOutbox(ctx, state); err != nil || n != want {
				t.Errorf("CountOutbox(%q) = %d, %v; want %d", state, n, err, want)
			}
		}

		refused := []struct {
			name string
			err  error
			want error
		}{
			{"delivered, unknown id", s.MarkOutboxDelivered(ctx, agency, 999, nil, t0), store.ErrNotFound},
			{"retry, unknown id", s.MarkOutboxRetry(ctx, agency, 999, 1, t0, ""), store.ErrNotFound},
			{"final, unknown id", s.MarkOutboxFinal(ctx, agency, 999, store.OutboxFailed, ""), store.ErrNotFound},
			{"delivered, message of another destination", s.MarkOutboxDelivered(ctx, city, m2.ID, nil, t0), store.ErrNotFound},
		}
		for _, tt := range refused {
			if !errors.Is(tt.err, tt.want) {
				t.Errorf("%s: err = %v, want %v", tt.name, tt.err, tt.want)
			}
		}
		if err := s.MarkOutboxFinal(ctx, agency, m2.ID, store.OutboxDelivered, ""); err == nil {
			t.Error("MarkOutboxFinal with state delivered succeeded")
		}
		if _, err := s.ListOutbox(ctx, "", "lost"); err == nil {
			t.Error("ListOutbox with an unknown state succeeded")
		}
		if _, err := s.EnqueueOutbox(ctx, store.OutboxMessage{MessageID: "x", Destination: toCity}); err == nil {
			t.Error("EnqueueOutbox without a creation time succeeded")
		}
		if n, err := s.CountOutbox(ctx, ""); err != nil || n != 3 {
			t.Errorf("after the refusals CountOutbox = %d, %v; want 3", n, err)
		}
	})
}

func TestRetryOutboxNow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		now := t0.Add(time.Minute)

		a1 := enqueue(t, s, message("a1", toAgency, t0))
		a2 := enqueue(t, s, message("a2", toAgency, t0))
		a3 := enqueue(t, s, message("a3", toAgency, t0))
		c1 := enqueue(t, s, message("c1", toCity, t0))
		// a1 was delivered; a2 waits in backoff; a3 is behind it; c1, to
		// another destination, waits in backoff too.
		agency := lease(t, s, toAgency)
		if err := s.MarkOutboxDelivered(ctx, agency, a1.ID, []byte(`{}`), t0); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkOutboxRetry(ctx, agency, a2.ID, 6, now.Add(time.Minute), "connection timed out"); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkOutboxRetry(ctx, lease(t, s, toCity), c1.ID, 3, now.Add(time.Minute), "connection timed out"); err != nil {
			t.Fatal(err)
		}

		n, err := s.RetryOutboxNow(ctx, toAgency, now)
		if err != nil || n != 1 {
			t.Fatalf("RetryOutboxNow(agency) = %d, %v; want 1", n, err)
		}
		due, err := s.DueOutbox(ctx, now, holder, 0)
		if err != nil || !reflect.DeepEqual(ids(due), []string{"a2"}) {
			t.Fatalf("DueOutbox after the reset = %v, %v; want [a2]", ids(due), err)
		}
		a2.NextAttempt, a2.LastError = now, "connection timed out"
		if !reflect.DeepEqual(due[0], a2) {
			t.Errorf("a2 after the reset = %+v, want %+v", due[0], a2)
		}
		got, err := s.ListOutbox(ctx, "", "")
		if err != nil {
			t.Fatal(err)
		}
		a1.State, a1.Receipt, a1.DeliveredAt = store.OutboxDelivered, []byte(`{}`), t0
		c1.Attempts, c1.NextAttempt, c1.LastError = 3, now.Add(time.Minute), "connection timed out"
		if want := []store.OutboxMessage{a1, a2, a3, c1}; !reflect.DeepEqual(got, want) {
			t.Errorf("outbox after the reset:\n got %+v\nwant %+v", got, want)
		}
		if n, err := s.RetryOutboxNow(ctx, toAgency, now); err != nil || n != 0 {
			t.Errorf("second RetryOutboxNow(agency) = %d, %v; want 0", n, err)
		}
	})
}
