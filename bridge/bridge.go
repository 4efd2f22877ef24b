package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// ChatSender sends a Matrix user's chat, edit or redaction (kind chat,
// chat.edit or chat.redact; ref the signal changed) into a conference as
// this node, under the Matrix user's id, and returns the signal's id. The
// node implements it with federation's SendSignal.
type ChatSender interface {
	SendMatrixChat(ctx context.Context, conference, matrixUser, kind, text, ref string) (signalID string, err error)
}

// GuestIssuer turns a verified Matrix user into an Entente guest and returns
// the guest's API token. The node implements it with its accounts.
type GuestIssuer interface {
	IssueGuest(ctx context.Context, matrixUser string) (token string, err error)
}

// GuestLeaver is told when a Matrix user's last call membership in a
// conference's Matrix room ends (spec/client-api.md §8.8). The node takes
// a guest who joined through Element Call's focus out of the conference
// with federation's Leave, and does nothing for anyone else.
type GuestLeaver interface {
	LeaveGuest(ctx context.Context, conference, matrixUser string) error
}

// Conferences is how the bridge sees Entente conferences; the node answers it
// from federation's state.
type Conferences interface {
	// Conference returns the conference as it is now.
	Conference(ctx context.Context, id string) (Conference, error)
}

// Conference is what the bridge mirrors of a conference (spec/client-api.md).
type Conference struct {
	ID, Title, Host, HostName string
	Ended                     bool
	// JoinURL is where a browser joins the conference.
	JoinURL      string
	Participants []Participant
}

// Participant is one person in a conference's call.
type Participant struct {
	// User is the participant's reference, "local@did:web:…".
	User, DisplayName, Organisation, Node string
	// MatrixUser is set when the participant joined from Matrix (through
	// OpenIDLogin): they are in the room themselves and get no ghost.
	MatrixUser string
}

// Store is the part of the node's store the bridge keeps its state in.
type Store interface {
	PutBridgePortal(ctx context.Context, p store.BridgePortal) error
	GetBridgePortal(ctx context.Context, conference string) (store.BridgePortal, error)
	GetBridgePortalByRoom(ctx context.Context, roomID string) (store.BridgePortal, error)
	ListBridgePortals(ctx context.Context) ([]store.BridgePortal, error)
	BridgeTransactionApplied(ctx context.Context, txnID string) (bool, error)
	MarkBridgeTransaction(ctx context.Context, txnID string, at time.Time) error
	PutBridgeGhost(ctx context.Context, g store.BridgeGhost) error
	GetBridgeGhost(ctx context.Context, userRef string) (store.BridgeGhost, error)
	PruneBridgeTransactions(ctx context.Context, before time.Time) (int64, error)
	PutBridgeEvent(ctx context.Context, e store.BridgeEvent) error
	GetBridgeEvent(ctx context.Context, conference, item string) (store.BridgeEvent, error)
	GetBridgeEventByMatrixID(ctx context.Context, eventID string) (store.BridgeEvent, error)
}

// Options configures a Bridge. Registration, HomeserverURL,
// HomeserverDomain, Listen, Store, Conferences and NodeDID are required.
type Options struct {
	// Registration holds the tokens shared with the homeserver (see
	// NewRegistration).
	Registration     *appservice.Registration
	HomeserverURL    string
	HomeserverDomain string
	// Listen is the host:port of the appservice HTTP listener the
	// homeserver pushes transactions to.
	Listen string
	// BotLocalpart defaults to the registration's sender_localpart;
	// GhostPrefix to "entente_".
	BotLocalpart string
	GhostPrefix  string

	Store       Store
	Conferences Conferences
	// NodeDID is this node's DID: chat it sent for Matrix users carries
	// it as author, and is not mirrored back into Matrix.
	NodeDID string
	// Chat sends Matrix users' chat into conferences. Nil: Matrix chat
	// stays in Matrix.
	Chat ChatSender

	// OpenIDServerName and OpenIDBaseURL name the one homeserver whose
	// users OpenIDLogin accepts, and where their tokens are checked.
	// Empty: OpenIDLogin refuses everyone.
	OpenIDServerName string
	OpenIDBaseURL    string
	// HTTPClient checks OpenID tokens; the node passes its SSRF-guarded
	// client. Matrix API calls use mautrix's own client.
	HTTPClient *http.Client
	// Leaver follows Matrix users' call memberships in portal rooms. Nil:
	// a Matrix guest leaves a conference only through the client API.
	Leaver GuestLeaver
	// FocusURL is the livekit_service_url of the node's MatrixRTC focus
	// for Element Call (spec/client-api.md §8.8), named in the ghosts'
	// call memberships. Empty: the focus is off and none is named.
	FocusURL string
	// Guests turns verified Matrix users into Entente guests. Nil:
	// OpenIDLogin refuses everyone.
	Guests GuestIssuer

	// Retries and RetryBackoff bound how Matrix API calls are retried
	// while the homeserver is unreachable or overloaded; the backoff
	// doubles after each attempt. Defaults: 5 and 2s.
	Retries      int
	RetryBackoff time.Duration

	Logger *slog.Logger
}

// Bridge is the Matrix appservice. Create it with New, then Start it.
type Bridge struct {
	o     Options
	as    *appservice.AppService
	ep    *appservice.EventProcessor
	log   *slog.Logger
	locks conferenceLocks

	// intentMu guards the mautrix intents while they are made and set up.
	intentMu sync.Mutex

	// signals waits for mirroring into Matrix (QueueSignal).
	signals chan Signal

	// openIDFed checks OpenID tokens at openIDWhere (openIDClient).
	openIDFed   *federation.Client
	openIDWhere string

	// lifetime, renewBefore and renewEvery time the ghosts' call
	// memberships (callMembershipLifetime and after).
	lifetime, renewBefore, renewEvery time.Duration

	mu          sync.Mutex
	server      *http.Server
	listener    net.Listener
	served      chan struct{}
	stopSignals context.CancelFunc
	workers     sync.WaitGroup // the signal mirror, the transaction pruner and the membership renewer
}

const (
	defaultGhostPrefix  = "entente_"
	defaultRetries      = 5
	defaultRetryBackoff = 2 * time.Second
)

// New checks o and prepares the appservice; it does no I/O.
func New(o Options) (*Bridge, error) {
	switch {
	case o.Registration == nil:
		return nil, errors.New("bridge: registration is required")
	case o.Registration.AppToken == "" || o.Registration.ServerToken == "":
		return nil, errors.New("bridge: registration has no as_token or hs_token")
	case o.Store == nil:
		return nil, errors.New("bridge: store is required")
	case o.Conferences == nil:
		return nil, errors.New("bridge: conferences are required")
	case o.Listen == "":
		return nil, errors.New("bridge: listen address is required")
	case o.NodeDID == "":
		return nil, errors.New("bridge: node DID is required")
	}
	if o.BotLocalpart == "" {
		o.BotLocalpart = o.Registration.SenderLocalpart
	}
	if o.BotLocalpart == "" {
		return nil, errors.New("bridge: bot localpart is required (registration has no sender_localpart)")
	}
	if o.GhostPrefix == "" {
		o.GhostPrefix = defaultGhostPrefix
	}
	if o.Retries == 0 {
		o.Retries = defaultRetries
	}
	if o.RetryBackoff == 0 {
		o.RetryBackoff = defaultRetryBackoff
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	// mautrix takes the bot's localpart from the registration.
	reg := *o.Registration
	reg.SenderLocalpart = o.BotLocalpart
	as, err := appservice.CreateFull(appservice.CreateOpts{
		Registration:     &reg,
		HomeserverDomain: o.HomeserverDomain,
		HomeserverURL:    o.HomeserverURL,
	})
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	as.DefaultHTTPRetries = o.Retries
	b := &Bridge{o: o, as: as, log: o.Logger.With("component", "bridge"), signals: make(chan Signal, signalQueueSize),
		lifetime: callMembershipLifetime, renewBefore: callMembershipRenewBefore, renewEvery: callMembershipRenewEvery}
	if o.OpenIDServerName != "" {
		if b.openIDFed, b.openIDWhere, err = b.openIDClient(); err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
	}
	// Before any intent exists: each copies the logger when it is made.
	as.Log = mautrixLogger(b.log.With("library", "mautrix").Handler())
	as.Middleware = append(as.Middleware, b.applyTransactionsOnce)
	return b, nil
}

// Start binds the appservice listener and starts serving transactions and
// processing their events. It returns once the listener is bound.
func (b *Bridge) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.server != nil {
		return errors.New("bridge: already started")
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", b.o.Listen)
	if err != nil {
		return fmt.Errorf("bridge: listen on %s: %w", b.o.Listen, err)
	}
	b.listener = l
	b.server = &http.Server{Handler: b.handler(), ReadHeaderTimeout: 10 * time.Second}
	b.served = make(chan struct{})
	// A processor per Start: a stopped one cannot be started again.
	b.ep = appservice.NewEventProcessor(b.as)
	// One event at a time, in order, as the homeserver sent them.
	b.ep.ExecMode = appservice.Sync
	b.handleEvents()
	b.ep.Start(context.WithoutCancel(ctx))
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	b.stopSignals = stop
	b.workers.Go(func() { b.mirrorSignals(sctx) })
	b.workers.Go(func() { b.pruneTransactions(sctx) })
	b.workers.Go(func() { b.renewMemberships(sctx) })
	go func() {
		defer close(b.served)
		if err := b.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("appservice listener stopped", "err", err)
		}
	}()
	b.log.Info("appservice listening", "addr", l.Addr().String(), "homeserver", b.o.HomeserverURL)
	return nil
}

// Addr is the bound address of the appservice listener, nil before Start.
func (b *Bridge) Addr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.listener == nil {
		return nil
	}
	return b.listener.Addr()
}

// Stop closes the listener, waits for in-flight transactions and stops the
// event processor and the mirroring of signals.
func (b *Bridge) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.server.Shutdown(ctx); err != nil {
		b.log.Warn("appservice listener shutdown", "err", err)
	}
	<-b.served
	b.ep.Stop()
	// Signals still queued are mirrored after the next Start.
	b.stopSignals()
	b.workers.Wait()
	b.server, b.listener = nil, nil
}

// handler serves the appservice API (mautrix's router, behind the
// transaction guard).
func (b *Bridge) handler() http.Handler {
	var h http.Handler = b.as.Router
	for i := len(b.as.Middleware) - 1; i >= 0; i-- {
		h = b.as.Middleware[i](h)
	}
	return h
}

// applyTransactionsOnce makes the transaction id durable: mautrix only
// remembers the ids it saw since the process started, and the homeserver
// resends a transaction it got no answer for, including across restarts of
// the bridge.
func (b *Bridge) applyTransactionsOnce(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		txnID, ok := strings.CutPrefix(r.URL.Path, "/_matrix/app/v1/transactions/")
		if r.Method != http.MethodPut || !ok || txnID == "" || strings.Contains(txnID, "/") {
			next.ServeHTTP(w, r)
			return
		}
		if !b.as.CheckServerToken(w, r) {
			return
		}
		if !b.readTransaction(w, r) {
			return
		}
		ctx := r.Context()
		applied, err := b.o.Store.BridgeTransactionApplied(ctx, txnID)
		if err != nil {
			// The homeserver retries a transaction that failed.
			httpapi.RecordCause(w, fmt.Errorf("read appservice transaction %s: %w", txnID, err))
			http.Error(w, `{"errcode":"M_UNKNOWN","error":"transaction store unavailable"}`, http.StatusInternalServerError)
			return
		}
		if applied {
			b.log.Debug("appservice transaction already applied", "txn", txnID)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("{}"))
			return
		}
		rec := httpapi.NewStatusRecorder(w)
		next.ServeHTTP(rec, r)
		if rec.Status != http.StatusOK {
			return
		}
		if err := b.o.Store.MarkBridgeTransaction(context.WithoutCancel(ctx), txnID, time.Now()); err != nil {
			b.log.Error("mark appservice transaction applied", "txn", txnID, "err", err)
		}
	})
}

// maxTransactionBody bounds the body of an appservice transaction. A
// homeserver sends at most a hundred events per transaction, each at most
// 64 KiB (the Matrix limit on an event's size): 16 MiB leaves room for twice
// that with ephemeral events. README, "Bridging Matrix", documents it.
const maxTransactionBody = 16 << 20

// readTransaction reads the transaction's body whole, within
// maxTransactionBody, and hands it on; a larger one is answered 413 and
// never parsed.
func (b *Bridge) readTransaction(w http.ResponseWriter, r *http.Request) bool {
	tooLarge := func() bool {
		b.log.Warn("appservice transaction refused: body too large", "limit", maxTransactionBody)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = fmt.Fprintf(w, `{"errcode":"M_TOO_LARGE","error":"transaction body over %d bytes"}`, maxTransactionBody)
		return false
	}
	if r.ContentLength > maxTransactionBody {
		return tooLarge()
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTransactionBody+1))
	if err != nil {
		http.Error(w, `{"errcode":"M_UNKNOWN","error":"transaction body could not be read"}`, http.StatusBadRequest)
		return false
	}
	if len(body) > maxTransactionBody {
		return tooLarge()
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return true
}

// conferenceLocks serialises the bridge's work on each conference, so that
// a Sync racing a Portal or another Sync does not post twice. An entry lives
// only while someone holds or waits for it: the map does not keep a lock for
// every conference that ever ended.
type conferenceLocks struct {
	mu    sync.Mutex
	locks map[string]*conferenceLock
}

type conferenceLock struct {
	sync.Mutex
	users int // holders and waiters, guarded by conferenceLocks.mu
}

func (c *conferenceLocks) lock(conference string) func() {
	c.mu.Lock()
	if c.locks == nil {
		c.locks = make(map[string]*conferenceLock)
	}
	l, ok := c.locks[conference]
	if !ok {
		l = &conferenceLock{}
		c.locks[conference] = l
	}
	l.users++
	c.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		c.mu.Lock()
		if l.users--; l.users == 0 {
			delete(c.locks, conference)
		}
		c.mu.Unlock()
	}
}

// held is how many conferences have a lock entry.
func (c *conferenceLocks) held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.locks)
}

// intent returns the appservice's intent for user, with the bridge's retry
// backoff (mautrix copies the retry count but not the backoff). It is nil
// when user is not on the bridge's homeserver.
func (b *Bridge) intent(user id.UserID) *appservice.IntentAPI {
	b.intentMu.Lock()
	defer b.intentMu.Unlock()
	in := b.as.Intent(user)
	if in != nil && in.Client.DefaultHTTPBackoff != b.o.RetryBackoff {
		in.Client.DefaultHTTPBackoff = b.o.RetryBackoff
	}
	return in
}

func (b *Bridge) bot() *appservice.IntentAPI { return b.intent(b.botUser()) }

func (b *Bridge) botUser() id.UserID { return id.NewUserID(b.o.BotLocalpart, b.o.HomeserverDomain) }

// transactionKeep is how long an applied transaction id is remembered: a
// homeserver retries a transaction until it is acknowledged, within minutes,
// never weeks later.
const transactionKeep = 7 * 24 * time.Hour

// pruneTransactions forgets old transaction ids now and then every hour,
// until ctx ends.
func (b *Bridge) pruneTransactions(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if _, err := b.o.Store.PruneBridgeTransactions(ctx, time.Now().Add(-transactionKeep)); err != nil && ctx.Err() == nil {
			b.log.Warn("pruning applied transactions failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
