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
}

func (e *ResolveError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("resolve %s: %s", e.DID, e.Reason)
	}
	return fmt.Sprintf("resolve %s: %s: %v", e.DID, e.Reason, e.Err)
}

func (e *ResolveError) Unwrap() error { return e.Err }

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
	Logger     *slog.Logger
	Now        func() time.Time
}

// Resolver fetches and caches peers' DID documents. It is safe for
// concurrent use.
type Resolver struct {
	client       *http.Client
	ttl          time.Duration
	maxBytes     int64
	allowPrivate bool
	minRefetch   time.Duration
	log          *slog.Logger
	now          func() time.Time

	mu       sync.Mutex
	entries  map[string]*cacheEntry
	inflight map[string]*fetchCall
}

type cacheEntry struct {
	peer        *Peer // nil after a failed fetch
	lastAttempt time.Time
	lastErr     error
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
// the TTL. Concurrent callers for one DID share one fetch. After a failed
// fetch the error is returned for the minimum refetch interval without fetching again.
func (r *Resolver) Resolve(ctx context.Context, did string) (*Peer, error) {
	r.mu.Lock()
	now := r.now()
	if e, ok := r.entries[did]; ok {
		if e.peer != nil && now.Sub(e.peer.FetchedAt) < r.ttl {
			r.mu.Unlock()
			return e.peer, nil
		}
		if e.peer == nil && now.Sub(e.lastAttempt) < r.minRefetch {
			r.mu.Unlock()
			return nil, e.lastErr
		}
	}
	call := r.startFetchLocked(did)
	r.mu.Unlock()
	return r.wait(ctx, call)
}

// Refresh fetches did again, bypassing the cache, for a key id the cached
// document lacks. Within the minimum refetch interval of the previous fetch it returns
// the cached result instead.
func (r *Resolver) Refresh(ctx context.Context, did string) (*Peer, error) {
	r.mu.Lock()
	now := r.now()
	if e, ok := r.entries[did]; ok && now.Sub(e.lastAttempt) < r.minRefetch {
		r.mu.Unlock()
		if e.peer != nil {
			return e.peer, nil
		}
		return nil, e.lastErr
	}
	call := r.startFetchLocked(did)
	r.mu.Unlock()
	return r.wait(ctx, call)
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
		if r.inflight[did] == call {
			delete(r.inflight, did)
			r.entries[did] = &cacheEntry{peer: peer, lastAttempt: r.now(), lastErr: err}
		}
		r.mu.Unlock()
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
		return fail("fetch failed", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail("unexpected HTTP status", fmt.Errorf("GET %s: %s", docURL, resp.Status))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.maxBytes+1))
	if err != nil {
		return fail("fetch failed", fmt.Errorf("read body: %w", err))
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
