package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

func TestInTxCommits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		conf := store.Conference{ID: "c-commit0000000000", Host: hostDID, Title: "Commit", CreatedBy: "alice@" + hostDID,
			CreatedAt: t0, HeadSeq: 1, HeadHash: "hash-1"}
		err := s.InTx(ctx, func(tx store.Tx) error {
			// A new conference's first record may come before its row.
			if err := tx.AppendRecord(ctx, record(conf.ID, 1)); err != nil {
				return err
			}
			if err := tx.PutConference(ctx, conf); err != nil {
				return err
			}
			// The transaction sees its own writes.
			got, err := tx.GetConference(ctx, conf.ID)
			if err != nil || got != conf {
				return fmt.Errorf("inside the transaction GetConference = %+v, %v", got, err)
			}
			_, err = tx.EnqueueOutbox(ctx, message("log-1", toAgency, t0))
			return err
		})
		if err != nil {
			t.Fatalf("InTx: %v", err)
		}
		if got, err := s.GetConference(ctx, conf.ID); err != nil || got != conf {
			t.Errorf("after commit GetConference = %+v, %v; want %+v", got, err, conf)
		}
		if recs, err := s.ListRecords(ctx, conf.ID, 0, 0); err != nil || len(recs) != 1 {
			t.Errorf("after commit ListRecords = %d records, %v; want 1", len(recs), err)
		}
		if n, err := s.CountOutbox(ctx, store.OutboxPending); err != nil || n != 1 {
			t.Errorf("after commit CountOutbox = %d, %v; want 1", n, err)
		}
	})
}

func TestInTxRollsBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		conf := putConference(t, s, "c-rollback00000000", t0)
		if err := s.AppendRecord(ctx, record(conf.ID, 1)); err != nil {
			t.Fatalf("AppendRecord: %v", err)
		}

		errRefused := errors.New("event refused by §6.1")
		causes := []struct {
			name string
			last func(tx store.Tx) error
			want error
		}{
			{"fn's own error", func(store.Tx) error { return errRefused }, errRefused},
			{"a conflict", func(tx store.Tx) error { return tx.AppendRecord(ctx, record(conf.ID, 1)) }, store.ErrConflict},
		}
		for _, c := range causes {
			err := s.InTx(ctx, func(tx store.Tx) error {
				if err := tx.PutPeer(ctx, store.Peer{DID: "did:web:agency.example", Name: "Agency"}); err != nil {
					return err
				}
				if err := tx.AppendRecord(ctx, record(conf.ID, 2)); err != nil {
					return err
				}
				if _, err := tx.EnqueueOutbox(ctx, message("log-2", toAgency, t0)); err != nil {
					return err
				}
				return c.last(tx)
			})
			if !errors.Is(err, c.want) {
				t.Fatalf("%s: InTx err = %v, want %v", c.name, err, c.want)
			}
			if _, err := s.GetPeer(ctx, "did:web:agency.example"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: the rolled back peer is there (err = %v)", c.name, err)
			}
			if recs, err := s.ListRecords(ctx, conf.ID, 0, 0); err != nil || len(recs) != 1 {
				t.Errorf("%s: after rollback ListRecords = %d records, %v; want 1", c.name, len(recs), err)
			}
			if n, err := s.CountOutbox(ctx, ""); err != nil || n != 0 {
				t.Errorf("%s: after rollback CountOutbox = %d, %v; want 0", c.name, n, err)
			}
		}
	})
}

// TestConcurrentTransactionsKeepTheChain has writers each read the head and
// append after it, as a host does. SQLite runs them one after the other, so
// all succeed; PostgreSQL lets them read the same head, so the losers get
// ErrConflict. Either way the chain never forks and the head matches it.
func TestConcurrentTransactionsKeepTheChain(t *testing.T) {
	const writers = 4
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		conf := putConference(t, s, "c-chain00000000000", t0)

		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Go(func() {
				errs[i] = s.InTx(ctx, func(tx store.Tx) error {
					c, err := tx.GetConference(ctx, conf.ID)
					if err != nil {
						return err
					}
					r := record(conf.ID, c.HeadSeq+1)
					r.EventID = fmt.Sprintf("writer-%d", i)
					if err := tx.AppendRecord(ctx, r); err != nil {
						return err
					}
					c.HeadSeq, c.HeadHash = r.Seq, r.Hash
					return tx.PutConference(ctx, c)
				})
			})
		}
		wg.Wait()
		succeeded := 0
		for i, err := range errs {
			switch {
			case err == nil:
				succeeded++
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("writer %d: %v, want nil or ErrConflict", i, err)
			}
		}
		if succeeded == 0 {
			t.Fatal("no writer succeeded")
		}
		if b.Name == store.BackendSQLite && succeeded != writers {
			t.Errorf("sqlite: %d of %d serialised writers succeeded, want all", succeeded, writers)
		}
		recs, err := s.ListRecords(ctx, conf.ID, 0, 0)
		if err != nil {
			t.Fatalf("ListRecords: %v", err)
		}
		if len(recs) != succeeded {
			t.Errorf("log holds %d records, want one per successful writer (%d)", len(recs), succeeded)
		}
		for i, r := range recs {
			if r.Seq != int64(i+1) {
				t.Errorf("record %d has seq %d, want %d", i, r.Seq, i+1)
			}
		}
		got, err := s.GetConference(ctx, conf.ID)
		if err != nil {
			t.Fatalf("GetConference: %v", err)
		}
		if got.HeadSeq != int64(len(recs)) || got.HeadHash != fmt.Sprintf("hash-%d", len(recs)) {
			t.Errorf("head = %d %q, want %d %q", got.HeadSeq, got.HeadHash, len(recs), fmt.Sprintf("hash-%d", len(recs)))
		}
	})
}
