package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// placeAttempts bounds Place's retries when other replicas claim the same
// conference at the same moment; each retry sees their claim.
const placeAttempts = 5

func sum256(b []byte) [32]byte { return sha256.Sum256(b) }

// placementKey is a conference's key in the placement bucket: conference
// IDs may hold characters keys may not.
func placementKey(conference string) string {
	s := sum256([]byte(conference))
	return hex.EncodeToString(s[:16])
}

// Owner returns the replica that runs the conference, if it has one and
// that replica is alive.
func (c *Cluster) Owner(ctx context.Context, conference string) (Replica, bool, error) {
	e, err := c.placement.Get(ctx, placementKey(conference))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Replica{}, false, nil
	}
	if err != nil {
		return Replica{}, false, fmt.Errorf("placement of %s: %w", conference, err)
	}
	var rec placementRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return Replica{}, false, nil
	}
	r, ok := c.live(rec.Replica)
	return r, ok, nil
}

// Place returns the replica that runs the conference. When it has none, or
// its replica is dead or draining, Place claims it for the least loaded live
// replica that is not draining, atomically: of replicas placing the same
// conference at once, one claim wins and all return the same replica.
func (c *Cluster) Place(ctx context.Context, conference string) (Replica, error) {
	key := placementKey(conference)
	for range placeAttempts {
		e, err := c.placement.Get(ctx, key)
		var rev uint64
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return Replica{}, fmt.Errorf("placement of %s: %w", conference, err)
		default:
			var rec placementRecord
			if json.Unmarshal(e.Value(), &rec) == nil {
				if r, ok := c.live(rec.Replica); ok && !r.Draining {
					return r, nil
				}
			}
			rev = e.Revision()
		}
		target, err := c.choose()
		if err != nil {
			return Replica{}, err
		}
		b, _ := json.Marshal(placementRecord{Conference: conference, Replica: target.ID})
		if rev == 0 {
			_, err = c.placement.Create(ctx, key, b)
		} else {
			_, err = c.placement.Update(ctx, key, b, rev)
		}
		if err == nil {
			c.log.Info("conference placed", "conference", conference, "on", target.ID)
			return target, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return Replica{}, fmt.Errorf("placement of %s: %w", conference, err)
		}
	}
	return Replica{}, fmt.Errorf("placement of %s: still contended after %d attempts", conference, placeAttempts)
}

// choose picks the live, not draining replica with the most room: among
// those below their capacity the one with the fewest participants (this
// replica on a tie: no proxy hop), and when every one is full the least
// full for its capacity.
func (c *Cluster) choose() (Replica, error) {
	self := c.Self()
	var best Replica
	found := false
	better := func(r Replica) bool {
		if !found {
			return true
		}
		rRoom, bRoom := r.Participants < capacity(r), best.Participants < capacity(best)
		switch {
		case rRoom != bRoom:
			return rRoom
		case !rRoom:
			// Both full: compare fill ratios without division.
			return r.Participants*capacity(best) < best.Participants*capacity(r)
		case r.Participants != best.Participants:
			return r.Participants < best.Participants
		}
		return r.ID == self.ID
	}
	for _, r := range c.Live() {
		if !r.Draining && better(r) {
			best, found = r, true
		}
	}
	if !found {
		return Replica{}, ErrNoReplica
	}
	return best, nil
}

func capacity(r Replica) int { return max(1, r.MaxParticipants) }

// Drain stops this replica taking conferences and releases those it runs,
// so that their next connection places them on another replica. The
// clients still connected are the caller's to send away.
func (c *Cluster) Drain(ctx context.Context) {
	c.mu.Lock()
	c.self.Draining = true
	c.mu.Unlock()
	if err := c.heartbeat(ctx); err != nil {
		c.log.Warn("draining heartbeat not written", "err", err)
	}
	// Every replica sees the drain at once, not at the next heartbeat.
	c.observeSelf()
	released := 0
	for _, e := range c.placedHere(ctx) {
		if err := c.placement.Delete(ctx, e.Key(), jetstream.LastRevision(e.Revision())); err == nil {
			released++
		}
	}
	c.log.Info("draining", "conferences_released", released)
}

func (c *Cluster) observeSelf() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[c.self.ID] = seenReplica{r: c.self}
}

// placedHere lists the placement entries naming this replica.
func (c *Cluster) placedHere(ctx context.Context) []jetstream.KeyValueEntry {
	lister, err := c.placement.ListKeys(ctx)
	if err != nil {
		if !errors.Is(err, jetstream.ErrNoKeysFound) {
			c.log.Warn("placements not listed", "err", err)
		}
		return nil
	}
	var out []jetstream.KeyValueEntry
	for k := range lister.Keys() {
		e, err := c.placement.Get(ctx, k)
		if err != nil {
			continue
		}
		var rec placementRecord
		if json.Unmarshal(e.Value(), &rec) == nil && rec.Replica == c.opts.ReplicaID {
			out = append(out, e)
		}
	}
	return out
}

// Conferences lists the conferences placed on this replica.
func (c *Cluster) Conferences(ctx context.Context) []string {
	var out []string
	for _, e := range c.placedHere(ctx) {
		var rec placementRecord
		if json.Unmarshal(e.Value(), &rec) == nil {
			out = append(out, rec.Conference)
		}
	}
	return out
}
