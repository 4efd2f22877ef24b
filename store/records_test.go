package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

// record builds the record of seq in conf, chained to the previous seq.
func record(conf string, seq int64) store.Record {
	prev := ""
	if seq > 1 {
		prev = fmt.Sprintf("hash-%d", seq-1)
	}
	return store.Record{
		Conference: conf, Seq: seq, Hash: fmt.Sprintf("hash-%d", seq), Prev: prev,
		EventID: fmt.Sprintf("ev-%d", seq), EventType: "participant.join",
		Origin: "did:web:agency.example", Sender: "bob@did:web:agency.example",
		// Bytes that a JSON column would reformat: they must come back as is.
		Event:     []byte(fmt.Sprintf(`{"v":1,  "payload":"p%d","sig":{}}`+"\n", seq)),
		Link:      []byte(fmt.Sprintf(`{"v":1,"payload":"l%d" }`, seq)),
		CreatedAt: t0.Add(time.Duration(seq) * time.Second),
	}
}

func TestRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		conf := putConference(t, s, "c-log0000000000000", t0).ID
		other := putConference(t, s, "c-otherlog00000000", t0).ID

		var all []store.Record
		for seq := int64(1); seq <= 4; seq++ {
			r := record(conf, seq)
			if err := s.AppendRecord(ctx, r); err != nil {
				t.Fatalf("AppendRecord(%d): %v", seq, err)
			}
			all = append(all, r)
		}
		// The same seq and event id in another conference are another log's.
		if err := s.AppendRecord(ctx, record(other, 1)); err != nil {
			t.Fatalf("AppendRecord in another conference: %v", err)
		}

		sameSeq := record(conf, 2)
		sameSeq.EventID = "ev-new"
		sameEvent := record(conf, 5)
		sameEvent.EventID = "ev-3"
		refused := []struct {
			name string
			r    store.Record
			want error
		}{
			{"seq taken", sameSeq, store.ErrConflict},
			{"event id taken", sameEvent, store.ErrConflict},
		}
		for _, tt := range refused {
			if err := s.AppendRecord(ctx, tt.r); !errors.Is(err, tt.want) {
				t.Errorf("AppendRecord, %s: err = %v, want %v", tt.name, err, tt.want)
			}
		}

		lists := []struct {
			after int64
			limit int
			want  []store.Record
		}{
			{0, 0, all},
			{0, -1, all},
			{1, 2, all[1:3]},
			{2, 10, all[2:]},
			{4, 0, nil},
		}
		for _, tt := range lists {
			got, err := s.ListRecords(ctx, conf, tt.after, tt.limit)
			if err != nil {
				t.Fatalf("ListRecords(after %d, limit %d): %v", tt.after, tt.limit, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ListRecords(after %d, limit %d) = %d records %+v, want %+v", tt.after, tt.limit, len(got), got, tt.want)
			}
		}

		got, err := s.GetRecordByEvent(ctx, conf, "ev-3")
		if err != nil {
			t.Fatalf("GetRecordByEvent: %v", err)
		}
		if !reflect.DeepEqual(got, all[2]) {
			t.Errorf("GetRecordByEvent = %+v, want %+v", got, all[2])
		}
		if _, err := s.GetRecordByEvent(ctx, conf, "ev-new"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRecordByEvent of a refused record: err = %v, want ErrNotFound", err)
		}
	})
}

func TestConcurrentAppendRecordOfOneSeq(t *testing.T) {
	const rounds = 5
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		conf := putConference(t, s, "c-race000000000000", t0).ID
		for seq := int64(1); seq <= rounds; seq++ {
			var (
				wg   sync.WaitGroup
				errs [2]error
			)
			for i := range errs {
				r := record(conf, seq)
				r.EventID = fmt.Sprintf("ev-%d-writer-%d", seq, i)
				wg.Go(func() { errs[i] = s.AppendRecord(t.Context(), r) })
			}
			wg.Wait()
			var ok, conflicts int
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, store.ErrConflict):
					conflicts++
				default:
					t.Errorf("seq %d: AppendRecord: %v, want nil or ErrConflict", seq, err)
				}
			}
			if ok != 1 || conflicts != 1 {
				t.Fatalf("seq %d: %d appends succeeded and %d conflicted, want 1 and 1 (errors %v)", seq, ok, conflicts, errs)
			}
		}
		recs, err := s.ListRecords(t.Context(), conf, 0, 0)
		if err != nil {
			t.Fatalf("ListRecords: %v", err)
		}
		if len(recs) != rounds {
			t.Fatalf("log holds %d records, want %d", len(recs), rounds)
		}
		for i, r := range recs {
			if r.Seq != int64(i+1) {
				t.Errorf("record %d has seq %d, want %d", i, r.Seq, i+1)
			}
		}
	})
}
