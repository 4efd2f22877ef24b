package federation

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// PeerLimits bound what one trusted peer may ask of this node (spec §3.4).
// A zero field takes its default.
type PeerLimits struct {
	// MessagesPerSecond is the sustained rate of signed requests per peer.
	MessagesPerSecond float64
	// Burst is how many requests a peer may make at once above that rate.
	Burst int
	// OpenInvitations is how many conferences of one host may invite this
	// node at a time without an answer.
	OpenInvitations int
	// Conferences is how many conferences, not ended and not declined, one
	// host may hold with this node.
	Conferences int
}

// Defaults of PeerLimits, also those of the configuration (internal/config).
const (
	DefaultPeerMessagesPerSecond = 50
	DefaultPeerBurst             = 200
	DefaultPeerOpenInvitations   = 100
	DefaultPeerConferences       = 1000
)

// quotaRetryAfter is the Retry-After of a refusal for a full quota: it
// empties when this node's users answer or the host ends conferences,
// which takes minutes, not milliseconds.
const quotaRetryAfter = 60 * time.Second

func (l PeerLimits) withDefaults() PeerLimits {
	if l.MessagesPerSecond <= 0 {
		l.MessagesPerSecond = DefaultPeerMessagesPerSecond
	}
	if l.Burst <= 0 {
		l.Burst = DefaultPeerBurst
	}
	if l.OpenInvitations <= 0 {
		l.OpenInvitations = DefaultPeerOpenInvitations
	}
	if l.Conferences <= 0 {
		l.Conferences = DefaultPeerConferences
	}
	return l
}

// peerRates is one token bucket per peer. Only trusted peers whose
// signature verified get one, so the map is bounded by the trust list.
type peerRates struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu    sync.Mutex
	peers map[string]*rate.Limiter
}

func newPeerRates(l PeerLimits, now func() time.Time) *peerRates {
	return &peerRates{limit: rate.Limit(l.MessagesPerSecond), burst: l.Burst, now: now, peers: map[string]*rate.Limiter{}}
}

// admit takes one request of peer from its bucket, or refuses it with the
// time until the bucket holds one again (spec §3.4).
func (p *peerRates) admit(peer string) error {
	p.mu.Lock()
	lim, ok := p.peers[peer]
	if !ok {
		lim = rate.NewLimiter(p.limit, p.burst)
		p.peers[peer] = lim
	}
	p.mu.Unlock()
	now := p.now()
	if lim.AllowN(now, 1) {
		return nil
	}
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return httpapi.TooManyRequests(wait, "%s is over its %g requests per second", peer, float64(p.limit))
}

// checkQuotas refuses a new conference from host when host already holds as
// many open invitations or conferences with this node as its limits allow
// (spec §3.4). It runs in the transaction that would add the conference.
func (s *Service) checkQuotas(ctx context.Context, tx store.Tx, host, conference string) error {
	n, err := tx.CountHostedConferences(ctx, host, s.did)
	if err != nil {
		return err
	}
	var refusal error
	switch {
	case n.Invited >= s.limits.OpenInvitations:
		refusal = httpapi.TooManyRequests(quotaRetryAfter, "%s already has %d open invitations to this node (limit %d)", host, n.Invited, s.limits.OpenInvitations)
	case n.Live >= s.limits.Conferences:
		refusal = httpapi.TooManyRequests(quotaRetryAfter, "%s already hosts %d conferences with this node (limit %d)", host, n.Live, s.limits.Conferences)
	default:
		return nil
	}
	s.log.Warn("new conference refused: peer limit reached", "peer", host, "conference", conference, "err", refusal)
	return refusal
}

// refusalLogEvery is how often one kind of refusal is logged at most.
const refusalLogEvery = 10 * time.Second

// maxRefusalKinds bounds the sampler's memory; past it, it starts afresh.
const maxRefusalKinds = 4096

// refusalSampler lets one log line per kind of refusal through every
// refusalLogEvery and counts the others.
type refusalSampler struct {
	mu    sync.Mutex
	kinds map[string]*refusalKind
}

type refusalKind struct {
	logged     time.Time
	suppressed int
}

// allow reports whether a refusal of kind is logged now, and how many of
// that kind were not logged since the last one.
func (rs *refusalSampler) allow(kind string, now time.Time) (bool, int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.kinds == nil || len(rs.kinds) >= maxRefusalKinds {
		rs.kinds = map[string]*refusalKind{}
	}
	k, ok := rs.kinds[kind]
	if !ok {
		rs.kinds[kind] = &refusalKind{logged: now}
		return true, 0
	}
	if now.Sub(k.logged) < refusalLogEvery {
		k.suppressed++
		return false, 0
	}
	n := k.suppressed
	k.logged, k.suppressed = now, 0
	return true, n
}
