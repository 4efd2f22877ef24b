package federation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// After a partition heals, a destination's messages would wait out the
// backoff they grew during it, a minute or more. So the outbox notes which
// destinations stopped answering, probes them, and retries them at once when
// they are heard from again (spec §8).
const (
	// probeEvery is how often a silent destination is probed.
	probeEvery = 2 * time.Second
	// probeTimeout bounds one probe; probes may overlap, so one that hangs
	// on a connection the partition silenced does not delay the next.
	probeTimeout = 3 * probeEvery
	// maxProbes bounds the probes in flight to one destination: enough
	// that one starts every probeEvery while earlier ones hang.
	maxProbes = int(probeTimeout/probeEvery) + 1
)

// reachability is what the outbox knows, in memory only, about whether its
// destinations answer. Losing it (a restart) costs only the ordinary
// backoff.
type reachability struct {
	mu sync.Mutex
	// silent holds the destinations whose last delivery attempt got no
	// answer at all, with their probes in flight.
	silent map[string]int
	// heard is when each peer was last heard from: a verified request from
	// it, an answer to a delivery, a fetched DID document.
	heard map[string]time.Time
}

// errNoAnswer marks a delivery attempt that got no HTTP answer at all: the
// destination could not be reached, as opposed to one that answered with
// an error.
var errNoAnswer = errors.New("no answer")

// noAnswer wraps err as a delivery attempt that got no answer.
func noAnswer(err error) error { return fmt.Errorf("%w: %w", errNoAnswer, err) }

// heardFrom notes that peer has shown it can be reached: a request signed
// by it passed spec §3.2, it answered a delivery, or its DID document was
// fetched. If its messages were waiting because it had stopped answering,
// their backoff starts over and they are sent now (spec §8).
func (s *Service) heardFrom(ctx context.Context, peer string) {
	now := s.now()
	s.reach.mu.Lock()
	s.reach.heard[peer] = now
	_, wasSilent := s.reach.silent[peer]
	delete(s.reach.silent, peer)
	s.reach.mu.Unlock()
	if !wasSilent {
		return
	}
	n, err := s.store.RetryOutboxNow(ctx, peer, now)
	if err != nil {
		s.log.Error("outbox: cannot retry a peer heard from again", "peer", peer, "err", err)
		return
	}
	s.log.Info("peer reachable again, retrying its messages now", "peer", peer, "messages", n)
	s.notifyOutbox()
}

// authenticate applies spec §3.2 to a request; one that passes is hearing
// from its signer.
func (s *Service) authenticate(r *http.Request) (*Inbound, error) {
	in, err := s.auth.Authenticate(r)
	if err == nil {
		s.heardFrom(r.Context(), in.PeerDID)
	}
	return in, err
}

// unanswered records that a delivery attempt to peer begun at started got
// no answer. It reports false when peer was heard from meanwhile: the path
// is back, and the message should be retried at once rather than after its
// backoff.
func (s *Service) unanswered(peer string, started time.Time) bool {
	s.reach.mu.Lock()
	defer s.reach.mu.Unlock()
	if h, ok := s.reach.heard[peer]; ok && !h.Before(started) {
		return false
	}
	if _, ok := s.reach.silent[peer]; !ok {
		s.reach.silent[peer] = 0
		s.log.Warn("peer does not answer, probing it", "peer", peer, "every", probeEvery)
	}
	return true
}

// forgetSilence stops probing peer, whose head message ended undelivered;
// the next attempt to reach it starts over.
func (s *Service) forgetSilence(peer string) {
	s.reach.mu.Lock()
	delete(s.reach.silent, peer)
	s.reach.mu.Unlock()
}

// runProbes fetches the DID document of every silent destination every
// probeEvery until ctx is done; a fetched document is hearing from it.
func (s *Service) runProbes(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.reach.mu.Lock()
		var due []string
		for peer, inFlight := range s.reach.silent {
			if inFlight < maxProbes {
				s.reach.silent[peer]++
				due = append(due, peer)
			}
		}
		s.reach.mu.Unlock()
		for _, peer := range due {
			wg.Go(func() { s.probe(ctx, peer) })
		}
	}
}

func (s *Service) probe(ctx context.Context, peer string) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err := s.resolver.Probe(ctx, peer)
	s.reach.mu.Lock()
	if n, ok := s.reach.silent[peer]; ok && n > 0 {
		s.reach.silent[peer] = n - 1
	}
	s.reach.mu.Unlock()
	if err != nil {
		s.log.Debug("probe failed", "peer", peer, "err", err)
		return
	}
	s.heardFrom(ctx, peer)
}
