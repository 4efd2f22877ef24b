package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Spanning (docs/replicas.md, "Spanning"). A conference lives on its owner
// replica (Place) while the owner has room; past that, participants go to
// other replicas, which join the owner's conference through replica trunks.
// Which replicas a conference spans, and how many of its participants each
// serves, is one record per conference in the spans bucket: every replica
// reads the same record, so every replica routes the conference's next
// participant to the same place, and writes to it are compare-and-set.

// spanRecord is the value of a conference's key in the spans bucket.
type spanRecord struct {
	Conference string `json:"conference"`
	// Owner is the replica that owned the conference when the record was
	// last written; a new owner starts a new record.
	Owner string `json:"owner"`
	// Replicas are the replicas serving participants of the conference, in
	// the order they joined it, with how many each serves as the replica
	// itself reported (SetConferenceLoad), and how many PlaceParticipant
	// sent it that have not arrived yet.
	Replicas []spanShare `json:"replicas"`
}

type spanShare struct {
	ID           string `json:"id"`
	Participants int    `json:"participants"`
	// Pending participants are on their way; PendingAt (Unix
	// milliseconds) is the last one's placement. Those not arrived within
	// pendingTTL never will (a dropped connection).
	Pending   int   `json:"pending,omitempty"`
	PendingAt int64 `json:"pending_at,omitempty"`
}

// pendingTTL is how long a placed participant is counted before it
// arrives: a WebSocket's proxying, authentication and join.
const pendingTTL = 20 * time.Second

// pending is the share's participants still on their way at now.
func (s *spanShare) pending(now time.Time) int {
	if s.Pending > 0 && now.Sub(time.UnixMilli(s.PendingAt)) > pendingTTL {
		return 0
	}
	return s.Pending
}

func (r *spanRecord) share(id string) *spanShare {
	for i := range r.Replicas {
		if r.Replicas[i].ID == id {
			return &r.Replicas[i]
		}
	}
	return nil
}

// count is how many participants of the conference replica id serves or
// is about to.
func (r *spanRecord) count(id string) int {
	if s := r.share(id); s != nil {
		return s.Participants + s.pending(time.Now())
	}
	return 0
}

// spans is the lazily opened spans bucket.
type spans struct {
	once sync.Once
	kv   jetstream.KeyValue
	err  error
}

func (c *Cluster) spanBucket(ctx context.Context) (jetstream.KeyValue, error) {
	c.spans.once.Do(func() {
		c.spans.kv, c.spans.err = c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      "entente_" + c.opts.NodeKey + "_spans",
			Description: "Entente conferences' spans over replicas",
			History:     1,
			Storage:     jetstream.FileStorage,
		})
		if c.spans.err != nil {
			c.spans.err = fmt.Errorf("NATS at %s: spans bucket: %w", redact(c.opts.NATSURL), c.spans.err)
		}
	})
	return c.spans.kv, c.spans.err
}

// PlaceParticipant returns the replica that is to serve a new participant of
// conference: its owner (Place) while the owner has room, otherwise a
// replica the conference already spans that has room, otherwise the least
// loaded other live replica, which the conference then spans. A replica has
// room while its load is below the capacity it announces
// (cluster.max_participants); its load is the larger of
// its last heartbeat's count and its participants in this conference as
// the span record has them, those on their way included (the record knows
// a placement at once, the roster at the next heartbeat). The chosen
// replica's pending count is raised at once, so that participants arriving
// together do not all fit into the last place; it falls as the replica
// reports them arrived (SetConferenceLoad), or after pendingTTL.
// When every live replica is full the least loaded serves anyway: a full
// node degrades, it does not refuse.
func (c *Cluster) PlaceParticipant(ctx context.Context, conference string) (Replica, error) {
	owner, err := c.Place(ctx, conference)
	if err != nil {
		return Replica{}, err
	}
	kv, err := c.spanBucket(ctx)
	if err != nil {
		return Replica{}, err
	}
	key := placementKey(conference)
	for range placeAttempts {
		rec, rev, err := c.readSpan(ctx, kv, key, conference, owner.ID)
		if err != nil {
			return Replica{}, err
		}
		target := c.chooseForSpan(owner, rec)
		s := rec.share(target.ID)
		if s == nil {
			rec.Replicas = append(rec.Replicas, spanShare{ID: target.ID})
			s = &rec.Replicas[len(rec.Replicas)-1]
		}
		now := time.Now()
		s.Pending, s.PendingAt = s.pending(now)+1, now.UnixMilli()
		if err := c.writeSpan(ctx, kv, key, rec, rev); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				continue
			}
			return Replica{}, err
		}
		if target.ID != owner.ID {
			c.log.Info("conference spans replicas", "conference", conference, "owner", owner.ID, "participant_on", target.ID)
		}
		return target, nil
	}
	return Replica{}, fmt.Errorf("span of %s: still contended after %d attempts", conference, placeAttempts)
}

// chooseForSpan applies PlaceParticipant's order to the live replicas.
func (c *Cluster) chooseForSpan(owner Replica, rec spanRecord) Replica {
	live := c.Live()
	load := func(r Replica) int { return max(r.Participants, rec.count(r.ID)) }
	byID := map[string]Replica{}
	for _, r := range live {
		byID[r.ID] = r
	}
	if load(owner) < capacity(owner) {
		return owner
	}
	for _, s := range rec.Replicas {
		if r, ok := byID[s.ID]; ok && s.ID != owner.ID && !r.Draining && load(r) < capacity(r) {
			return r
		}
	}
	var best Replica
	found := false
	for _, r := range live {
		if r.Draining || r.ID == owner.ID {
			continue
		}
		if !found || load(r) < load(best) {
			best, found = r, true
		}
	}
	if !found || (load(best) >= capacity(best) && load(owner) <= load(best)) {
		return owner
	}
	return best
}

// readSpan returns the conference's span record and its revision (0 when
// absent), started afresh when the owner changed, without the replicas
// that are no longer alive.
func (c *Cluster) readSpan(ctx context.Context, kv jetstream.KeyValue, key, conference, owner string) (spanRecord, uint64, error) {
	rec := spanRecord{Conference: conference, Owner: owner}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, 0, nil
	}
	if err != nil {
		return rec, 0, fmt.Errorf("span of %s: %w", conference, err)
	}
	var stored spanRecord
	if json.Unmarshal(e.Value(), &stored) != nil || stored.Owner != owner {
		return rec, e.Revision(), nil
	}
	live := map[string]bool{}
	for _, r := range c.Live() {
		live[r.ID] = true
	}
	stored.Replicas = slices.DeleteFunc(stored.Replicas, func(s spanShare) bool { return !live[s.ID] })
	return stored, e.Revision(), nil
}

func (c *Cluster) writeSpan(ctx context.Context, kv jetstream.KeyValue, key string, rec spanRecord, rev uint64) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = kv.Create(ctx, key, b)
	} else {
		_, err = kv.Update(ctx, key, b, rev)
	}
	return err
}

// SetConferenceLoad records that this replica serves n participants of
// conference: a rise is participants PlaceParticipant sent here that
// arrived. With none left nor on the way, this replica leaves the
// conference's span.
func (c *Cluster) SetConferenceLoad(ctx context.Context, conference string, n int) error {
	kv, err := c.spanBucket(ctx)
	if err != nil {
		return err
	}
	owner, ok, err := c.Owner(ctx, conference)
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	key := placementKey(conference)
	self := c.Self().ID
	for range placeAttempts {
		rec, rev, err := c.readSpan(ctx, kv, key, conference, owner.ID)
		if err != nil {
			return err
		}
		s := rec.share(self)
		switch {
		case s == nil && n == 0:
			return nil
		case s == nil:
			rec.Replicas = append(rec.Replicas, spanShare{ID: self, Participants: n})
		default:
			// Those who arrived were pending; those still on their way
			// stay counted.
			pending := s.pending(time.Now())
			if arrived := n - s.Participants; arrived > 0 {
				pending = max(0, pending-arrived)
			}
			s.Participants, s.Pending = n, pending
			if pending == 0 {
				s.PendingAt = 0
			}
			if n == 0 && pending == 0 {
				rec.Replicas = slices.DeleteFunc(rec.Replicas, func(s spanShare) bool { return s.ID == self })
			}
		}
		err = c.writeSpan(ctx, kv, key, rec, rev)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("span of %s: %w", conference, err)
		}
	}
	return fmt.Errorf("span of %s: still contended after %d attempts", conference, placeAttempts)
}

// InSpan reports whether the span record of conference, under its current
// owner, counts this replica among those serving it.
func (c *Cluster) InSpan(ctx context.Context, conference string) (bool, error) {
	kv, err := c.spanBucket(ctx)
	if err != nil {
		return false, err
	}
	owner, ok, err := c.Owner(ctx, conference)
	if err != nil || !ok {
		return false, err
	}
	rec, _, err := c.readSpan(ctx, kv, placementKey(conference), conference, owner.ID)
	if err != nil {
		return false, err
	}
	return rec.share(c.Self().ID) != nil, nil
}

// Span lists the replicas serving participants of conference, the owner
// first, with their participants in it as the span record has them.
func (c *Cluster) Span(ctx context.Context, conference string) ([]Replica, error) {
	kv, err := c.spanBucket(ctx)
	if err != nil {
		return nil, err
	}
	owner, ok, err := c.Owner(ctx, conference)
	if err != nil || !ok {
		return nil, err
	}
	rec, _, err := c.readSpan(ctx, kv, placementKey(conference), conference, owner.ID)
	if err != nil {
		return nil, err
	}
	byID := map[string]Replica{}
	for _, r := range c.Live() {
		byID[r.ID] = r
	}
	out := []Replica{}
	add := func(id string) {
		if r, ok := byID[id]; ok {
			r.Participants = rec.count(id)
			out = append(out, r)
		}
	}
	add(owner.ID)
	for _, s := range rec.Replicas {
		if s.ID != owner.ID {
			add(s.ID)
		}
	}
	return out, nil
}

// RecordedOwner reads, without joining the roster, the replica that the
// placement bucket of the node with nodeKey names for conference: for tools
// that watch a node from outside (bench media --replicas), never for
// routing, which must also know whether that replica is alive (Owner).
func RecordedOwner(ctx context.Context, js jetstream.JetStream, nodeKey, conference string) (string, error) {
	kv, err := js.KeyValue(ctx, "entente_"+nodeKey+"_placement")
	if err != nil {
		return "", fmt.Errorf("placement bucket: %w", err)
	}
	e, err := kv.Get(ctx, placementKey(conference))
	if err != nil {
		return "", fmt.Errorf("placement of %s: %w", conference, err)
	}
	var rec placementRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return "", fmt.Errorf("placement of %s: %w", conference, err)
	}
	return rec.Replica, nil
}
