package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"

	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// Options configure a Service.
type Options struct {
	DID string // this node's DID
	// PublicURL is the base URL peers reach this node at; the host of its
	// federation endpoint. Empty: the host of DID.
	PublicURL string
	Name      string // this institution's display name, vouched for in join events
	Store     store.Store
	Keys      *identity.Keyring
	Resolver  *identity.Resolver
	// HTTP is the SSRF-guarded client for requests to peers.
	HTTP   *http.Client
	Logger *slog.Logger
	Now    func() time.Time
	// RetryBase is the first outbox retry delay (spec §8: 1 s); tests shorten it.
	RetryBase time.Duration
	// RetryMax caps the retry delay (spec §8: 5 min).
	RetryMax time.Duration
	// MessageTTL is how long an outbound message may wait for delivery.
	MessageTTL time.Duration
	// DeliveryHolder names this process in the outbox leases, which make
	// one replica of a node at a time deliver to each peer (spec §8). It
	// must differ between processes sharing a store; empty: a new
	// NewDeliveryHolder.
	DeliveryHolder string
	// DeliveryLease is how long a lease lasts unrenewed, and so how long a
	// peer of a replica that died waits for another to take over. It is
	// renewed every third of it while delivering. Zero:
	// DefaultDeliveryLease.
	DeliveryLease time.Duration
	// OutboxWritten, when set, is called after a message is queued, so that
	// the node can wake its other replicas' outboxes (WakeOutbox): one of
	// them may hold the destination's lease. It must not block.
	OutboxWritten func()
	// Limits bound what each trusted peer may ask of this node (spec §3.4).
	Limits PeerLimits
	// LogWatcher, when set, is told when a conference's log or replica has
	// grown (for the SFU to recheck who may take part).
	LogWatcher LogWatcher
	// Signals, when set, receives every verified signal of a conference this
	// node takes part in (chat, hands, reactions, mute states), including its
	// own users'.
	Signals SignalReceiver
	// Trunks, when set, answers trunk offers from member nodes' SFUs for
	// conferences hosted here (spec §10). Without it, offers are refused.
	Trunks TrunkAnswerer
}

// Service is one node's federation: its trust list, the conferences it hosts
// or takes part in, its inbox and its outbox.
type Service struct {
	// outboxWritten is Options.OutboxWritten.
	outboxWritten func()

	did      string
	name     string
	store    store.Store
	keys     *identity.Keyring
	resolver *identity.Resolver
	client   *Client
	auth     *Authenticator
	log      *slog.Logger
	now      func() time.Time
	limits   PeerLimits
	rates    *peerRates
	refusals refusalSampler
	// deliveries counts the outbox's delivery outcomes.
	deliveries deliveryCounters

	retryBase, retryMax, messageTTL time.Duration
	wake                            chan struct{}
	// holder names this process in the outbox leases it takes, which last
	// lease unrenewed.
	holder     string
	lease      time.Duration
	leases     leases
	reach      reachability
	logWatcher LogWatcher
	signals    SignalReceiver
	trunks     TrunkAnswerer
}

// NewService builds a Service. It starts nothing; see RunOutbox.
func NewService(o Options) (*Service, error) {
	if o.DID == "" || o.Store == nil || o.Keys == nil || o.Resolver == nil || o.HTTP == nil {
		return nil, errors.New("federation: DID, Store, Keys, Resolver and HTTP are required")
	}
	s := &Service{
		did:        o.DID,
		name:       o.Name,
		store:      o.Store,
		keys:       o.Keys,
		resolver:   o.Resolver,
		log:        o.Logger,
		now:        o.Now,
		retryBase:  o.RetryBase,
		retryMax:   o.RetryMax,
		messageTTL: o.MessageTTL,
		limits:     o.Limits.withDefaults(),
		wake:       make(chan struct{}, 1),
		holder:     o.DeliveryHolder,
		lease:      o.DeliveryLease,
		leases:     leases{held: make(map[string]store.OutboxLease)},
		reach:      reachability{silent: make(map[string]int), heard: make(map[string]time.Time)},

		logWatcher:    o.LogWatcher,
		signals:       o.Signals,
		trunks:        o.Trunks,
		outboxWritten: o.OutboxWritten,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.retryBase <= 0 {
		s.retryBase = time.Second
	}
	if s.retryMax <= 0 {
		s.retryMax = 5 * time.Minute
	}
	if s.messageTTL <= 0 {
		s.messageTTL = 24 * time.Hour
	}
	if s.holder == "" {
		s.holder = NewDeliveryHolder()
	}
	if s.lease <= 0 {
		s.lease = DefaultDeliveryLease
	}
	host, err := ownAuthority(o.PublicURL, o.DID)
	if err != nil {
		return nil, err
	}
	s.rates = newPeerRates(s.limits, s.now)
	s.client = &Client{HTTP: o.HTTP, DID: o.DID, Keys: o.Keys, Now: s.now}
	s.auth = &Authenticator{
		Self:    o.DID,
		Host:    host,
		Trusted: s.trustedPin,
		Resolve: s.resolve,
		Admit:   s.rates.admit,
		Now:     s.now,
	}
	return s, nil
}

// ownAuthority is the host[:port] that peers sign requests to this node for
// (spec §3.2 step 4): the public URL's, or else the one its did:web DID
// names, in CanonicalAuthority's form.
func ownAuthority(publicURL, did string) (string, error) {
	if publicURL == "" {
		var err error
		if publicURL, err = identity.DocumentURL(did); err != nil {
			return "", fmt.Errorf("federation: %w", err)
		}
	}
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("federation: public URL %q has no host", publicURL)
	}
	return CanonicalAuthority(u.Host), nil
}

// DID is this node's DID.
func (s *Service) DID() string { return s.did }

// Name is this institution's display name.
func (s *Service) Name() string { return s.name }

// trustedPin is the Authenticator's view of the trust list (spec §2).
func (s *Service) trustedPin(ctx context.Context, did string) (string, error) {
	p, err := s.store.GetPeer(ctx, did)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%w: %s", ErrUntrusted, did)
	}
	if err != nil {
		return "", err
	}
	return p.KeyPin, nil
}

func (s *Service) resolve(ctx context.Context, did string, refresh bool) (*identity.Peer, error) {
	if refresh {
		return s.resolver.Refresh(ctx, did)
	}
	return s.resolver.Resolve(ctx, did)
}

// keyOf finds a P-256 key of a node by its full key id ("did#fragment"),
// re-resolving once when the fragment is unknown (a key rotated since the
// document was cached). It is the KeyLookup for envelopes.
func (s *Service) keyOf(ctx context.Context, keyID string) (atcrypto.PublicKey, error) {
	did, frag, ok := cutKeyID(keyID)
	if !ok {
		return nil, httpapi.Unauthorized("key id %q is not of the form did#fragment", keyID)
	}
	if did == s.did {
		// This node's own keys, current and in overlap: no need to ask the
		// network what we publish (an audit works offline).
		for _, k := range s.keys.Keys(s.now()) {
			if k.ID == frag {
				return atcrypto.ParsePublicMultibase(k.PublicMultibase)
			}
		}
		return nil, httpapi.Unauthorized("%s is not a key of this node", keyID)
	}
	peer, err := s.resolver.Resolve(ctx, did)
	if err != nil {
		return nil, unresolved(did, err)
	}
	key, err := peer.Key("#" + frag)
	if err != nil {
		peer, err = s.resolver.Refresh(ctx, did)
		if err != nil {
			return nil, unresolved(did, err)
		}
		if key, err = peer.Key("#" + frag); err != nil {
			return nil, httpapi.Unauthorized("%s is not a key of %s", keyID, did)
		}
	}
	return key, nil
}

// seal signs payload bytes as this node.
func (s *Service) seal(p Payload) (Envelope, []byte, error) {
	b, err := MarshalPayload(p)
	if err != nil {
		return Envelope{}, nil, err
	}
	env, err := Seal(s.did, s.keys, b)
	return env, b, err
}

// newPayload fills the header of a message from this node.
func (s *Service) newPayload(typ, destination, sender, conference string, content any) (Payload, error) {
	raw, err := marshalContent(content)
	if err != nil {
		return Payload{}, err
	}
	now := s.now()
	return Payload{
		ID:          NewMessageID(),
		Type:        typ,
		Origin:      s.did,
		Destination: destination,
		Sender:      sender,
		Conference:  conference,
		Created:     now.UnixMilli(),
		Expires:     now.Add(s.messageTTL).UnixMilli(),
		Content:     raw,
	}, nil
}

// logChanged tells the LogWatcher that a conference's log grew.
func (s *Service) logChanged(conference string) {
	if s.logWatcher != nil {
		s.logWatcher.LogChanged(conference)
	}
}
