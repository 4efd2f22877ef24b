package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
)

// ErrUnknownKey is returned by Peer.Key for a key the document does not hold;
// callers may Refresh once in case the peer has just rotated.
var ErrUnknownKey = errors.New("key not in the peer's DID document")

const (
	defaultResolverTTL      = 5 * time.Minute
	defaultMaxDocumentBytes = 64 << 10
	// defaultMinRefetch is the least time between two fetches of one DID
	// forced by Refresh (or retried after a failure), so that a flood of
	// messages naming unknown keys cannot make us hammer a peer.
	defaultMinRefetch = 10 * time.Second
	// defaultMaxStale is how old the last good document may grow while
	// refetches fail (spec/identity.md §4): long enough to ride out an
	// outage or a partition, short enough that a key the peer has since
	// withdrawn does not stay accepted for long where its new document
	// cannot be fetched.
	defaultMaxStale = time.Hour
	// staleWait is how long a lookup whose document is past its TTL waits
	// for the refetch before it falls back to the last good document: a
	// reachable peer's new document (say, without a revoked key) is used at
	// once, an unreachable peer does not hold the request up.
	staleWait = 2 * time.Second
	// fetchTimeout bounds a shared fetch when the client has no timeout of
	// its own; it runs detached from the context of whoever started it.
	fetchTimeout = 30 * time.Second
)

// Peer is what federation needs from a peer's DID document. A Peer returned
// by the Resolver is shared between callers and must not be modified.
type Peer struct {
	DID string
	// Keys holds the document's P-256 keys by fragment.
	Keys map[string]atcrypto.PublicKey
	// FederationEndpoint is the https URL of the peer's federation service.
	FederationEndpoint string
	FetchedAt          time.Time
}

// Key looks up a key by "did:web:…#fragment" (whose DID must be this peer's)
// or by "#fragment".
func (p *Peer) Key(keyID string) (atcrypto.PublicKey, error) {
	did, frag, ok := strings.Cut(keyID, "#")
	if !ok || frag == "" {
		return nil, fmt.Errorf("key id %q has no fragment", keyID)
	}
	if did != "" && did != p.DID {
		return nil, fmt.Errorf("key id %q belongs to another DID than %s", keyID, p.DID)
	}
	key, ok := p.Keys[frag]
	if !ok {
		return nil, fmt.Errorf("key id %q of %s: %w", keyID, p.DID, ErrUnknownKey)
	}
	return key, nil
}

// ResolveError says why a peer's DID document was not accepted.
type ResolveError struct {
	DID    string
	Reason string
	Err    error

	transient bool
}

func (e *ResolveError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("resolve %s: %s", e.DID, e.Reason)
	}
	return fmt.Sprintf("resolve %s: %s: %v", e.DID, e.Reason, e.Err)
}

func (e *ResolveError) Unwrap() error { return e.Err }

// Transient reports whether the document could not be fetched for a reason
// that may pass: the peer did not answer, or answered 5xx, 408 or 429. A
// document that was fetched and refused, an address the guard refuses and
// a DID that is not did:web are not transient.
func (e *ResolveError) Transient() bool { return e.transient }

// UnavailableError is returned by Resolve, Refresh and Probe when no usable
// document of DID can be had now because its fetch failed for a transient
// reason (Err, a *ResolveError) and no good document younger than the
// maximum stale age is cached. It is no verdict on the peer: asking again
// after RetryAfter may succeed (spec/federation.md §3.2 step 7).
type UnavailableError struct {
	DID        string
	RetryAfter time.Duration
	Err        error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%s unavailable, retry in %s: %v", e.DID, e.RetryAfter.Round(time.Millisecond), e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// ResolverOptions configures NewResolver.
type ResolverOptions struct {
	// Client fetches documents; normally from NewHTTPClient. Nil means a
	// NewHTTPClient with default options.
	Client *http.Client
	// TTL is how long a resolved document is used; zero means 5 minutes,
	// short enough for a revoked key to stop being accepted soon.
	TTL time.Duration
	// MaxDocumentBytes caps a document; zero means 64 KiB.
	MaxDocumentBytes int64
	// AllowPrivate is passed to CheckEndpoint for federation endpoints.
	AllowPrivate bool
	// MinRefetch is the least time between two fetches of one DID after a
	// failure or a Refresh; zero means 10 s.
	MinRefetch time.Duration
	// MaxStale is how old a document may be and still be used when its
	// refetch fails; zero means 1 hour. It is never less than TTL.
	MaxStale time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// Resolver fetches and caches peers' DID documents. It is safe for
// concurrent use.
type Resolver struct {
	client       *http.Client
	ttl          time.Duration
	maxBytes     int64
	allowPrivate bool
	minRefetch   time.Duration
	maxStale     time.Duration
	log          *slog.Logger
	now          func() time.Time

	mu       sync.Mutex
	entries  map[string]*cacheEntry
	inflight map[string]*fetchCall
}

type cacheEntry struct {
	// peer is the last good document; a failed refetch keeps it, so that it
	// stays in use until a good one replaces it or it is older than the
	// maximum stale age. Nil until a fetch has succeeded.
	peer        *Peer
	lastAttempt time.Time
	// lastErr is the error of the last fetch, nil when it succeeded.
	lastErr error
}

type fetchCall struct {
	done chan struct{}
	peer *Peer
	err  error
}

// NewResolver returns a Resolver with defaults filled in.
func NewResolver(opts ResolverOptions) *Resolver {
	r := &Resolver{
		client:       opts.Client,
		ttl:          opts.TTL,
		maxBytes:     opts.MaxDocumentBytes,
		allowPrivate: opts.AllowPrivate,
		minRefetch:   opts.MinRefetch,
		maxStale:     opts.MaxStale,
		log:          opts.Logger,
		now:          opts.Now,
		entries:      make(map[string]*cacheEntry),
		inflight:     make(map[string]*fetchCall),
	}
	if r.client == nil {
		r.client = NewHTTPClient(ClientOptions{AllowPrivate: opts.AllowPrivate})
	}
	if r.ttl <= 0 {
		r.ttl = defaultResolverTTL
	}
	if r.minRefetch <= 0 {
		r.minRefetch = defaultMinRefetch
	}
	if r.maxStale <= 0 {
		r.maxStale = defaultMaxStale
	}
	r.maxStale = max(r.maxStale, r.ttl)
	if r.maxBytes <= 0 {
		r.maxBytes = defaultMaxDocumentBytes
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Resolve returns the peer for did, from the cache while it is younger than
// the TTL. Concurrent callers for one DID share one fetch. Past the TTL the
// document is fetched again; when that fails, or takes longer than 2 s, the
// last good document is used while it is younger than the maximum stale age
// (spec/identity.md §4). Without one, a failed fetch is answered from the
// cache for the minimum refetch interval; a transient failure is an
// *UnavailableError.
func (r *Resolver) Resolve(ctx context.Context, did string) (*Peer, error) {
	r.mu.Lock()
	now := r.now()
	var stale *Peer
	e := r.entries[did]
	if e != nil && e.peer != nil {
		age := now.Sub(e.peer.FetchedAt)
		if age < r.ttl {
			r.mu.Unlock()
			return e.peer, nil
		}
		if age < r.maxStale {
			stale = e.peer
		}
	}
	if e != nil && e.lastErr != nil && now.Sub(e.lastAttempt) < r.minRefetch {
		r.mu.Unlock()
		if stale != nil {
			return stale, nil
		}
		return nil, r.failure(did, e.lastErr, e.lastAttempt, now)
	}
	call := r.startFetchLocked(did)
	r.mu.Unlock()
	if stale == nil {
		return r.wait(ctx, call)
	}
	t := time.NewTimer(staleWait)
	defer t.Stop()
	select {
	case <-call.done:
		if call.err == nil {
			return call.peer, nil
		}
		return stale, nil
	case <-t.C:
		return stale, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Refresh fetches did again, bypassing the cache, for a key id the cached
// document lacks. Within the minimum refetch interval of the previous fetch it returns
// that fetch's result instead. A failure is returned even when an older
// document is cached: that document lacks the key asked for.
func (r *Resolver) Refresh(ctx context.Context, did string) (*Peer, error) {
	r.mu.Lock()
	now := r.now()
	if e, ok := r.entries[did]; ok && now.Sub(e.lastAttempt) < r.minRefetch {
		r.mu.Unlock()
		if e.lastErr == nil {
			return e.peer, nil
		}
		return nil, r.failure(did, e.lastErr, e.lastAttempt, now)
	}
	call := r.startFetchLocked(did)
	r.mu.Unlock()
	return r.wait(ctx, call)
}

// Probe fetches did's document now, whatever the cache holds and however
// recently it was fetched, to learn whether the peer can be reached again;
// a good document replaces the cached one, a failure changes nothing. The
// caller paces its probes (the outbox probes a silent destination every
// few seconds, spec/federation.md §8). Failures are not logged.
func (r *Resolver) Probe(ctx context.Context, did string) (*Peer, error) {
	peer, err := r.fetchDocument(ctx, did)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.entries[did] = &cacheEntry{peer: peer, lastAttempt: r.now()}
	r.mu.Unlock()
	return peer, nil
}

// failure is the error of a failed fetch made at attempt, as seen at now:
// an *UnavailableError, saying when the next fetch may be made, when the
// failure is transient.
func (r *Resolver) failure(did string, err error, attempt, now time.Time) error {
	var re *ResolveError
	if !errors.As(err, &re) || !re.Transient() {
		return err
	}
	return &UnavailableError{DID: did, RetryAfter: max(attempt.Add(r.minRefetch).Sub(now), 0), Err: err}
}

// Forget drops what is known about did, for instance when its trust is
// withdrawn; a fetch already running will not be cached.
func (r *Resolver) Forget(did string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.entries, did)
	delete(r.inflight, did)
}

func (r *Resolver) wait(ctx context.Context, call *fetchCall) (*Peer, error) {
	select {
	case <-call.done:
		return call.peer, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startFetchLocked joins the running fetch for did or starts one. The fetch
// runs detached from any one caller's context, so a caller giving up does
// not fail the others; it is bounded by fetchTimeout.
func (r *Resolver) startFetchLocked(did string) *fetchCall {
	if call, ok := r.inflight[did]; ok {
		return call
	}
	call := &fetchCall{done: make(chan struct{})}
	r.inflight[did] = call
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		defer cancel()
		peer, err := r.fetch(ctx, did)

		r.mu.Lock()
		now := r.now()
		if r.inflight[did] == call {
			delete(r.inflight, did)
			entry := &cacheEntry{peer: peer, lastAttempt: now, lastErr: err}
			if old := r.entries[did]; err != nil && old != nil && old.peer != nil {
				entry.peer = old.peer
				r.log.Warn("keeping the last good DID document", "peer", did,
					"age", now.Sub(old.peer.FetchedAt).Round(time.Second), "max_stale", r.maxStale)
			}
			r.entries[did] = entry
		}
		r.mu.Unlock()
		if err != nil {
			err = r.failure(did, err, now, now)
		}
		call.peer, call.err = peer, err
		close(call.done)
	}()
	return call
}

func (r *Resolver) fetch(ctx context.Context, did string) (*Peer, error) {
	peer, err := r.fetchDocument(ctx, did)
	if err != nil {
		var re *ResolveError
		if errors.As(err, &re) {
			r.log.Warn("peer DID document refused", "peer", did, "reason", re.Reason, "error", re.Err)
		} else {
			r.log.Warn("peer DID document refused", "peer", did, "error", err)
		}
		return nil, err
	}
	r.log.Debug("peer DID document resolved", "peer", did, "keys", len(peer.Keys))
	return peer, nil
}

func (r *Resolver) fetchDocument(ctx context.Context, did string) (*Peer, error) {
	fail := func(reason string, err error) (*Peer, error) {
		return nil, &ResolveError{DID: did, Reason: reason, Err: err}
	}
	if !strings.HasPrefix(did, didWebPrefix) {
		return fail("not a did:web DID", nil)
	}
	docURL, err := DocumentURL(did)
	if err != nil {
		return fail("invalid did:web", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return fail("invalid did:web", err)
	}
	req.Header.Set("Accept", "application/did+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		refused := errors.Is(err, ErrPrivateAddress) || errors.Is(err, ErrRedirectRefused)
		return nil, &ResolveError{DID: did, Reason: "fetch failed", Err: err, transient: !refused}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c := resp.StatusCode
		transient := c >= 500 || c == http.StatusTooManyRequests || c == http.StatusRequestTimeout
		return nil, &ResolveError{DID: did, Reason: "unexpected HTTP status", Err: fmt.Errorf("GET %s: %s", docURL, resp.Status), transient: transient}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.maxBytes+1))
	if err != nil {
		return nil, &ResolveError{DID: did, Reason: "fetch failed", Err: fmt.Errorf("read body: %w", err), transient: true}
	}
	if int64(len(body)) > r.maxBytes {
		return fail("document too large", fmt.Errorf("more than %d bytes", r.maxBytes))
	}
	peer, err := parseDocument(did, body, r.allowPrivate)
	if err != nil {
		return nil, err
	}
	peer.FetchedAt = r.now()
	return peer, nil
}
