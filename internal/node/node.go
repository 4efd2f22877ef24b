// Package node assembles one institution's Entente node from the other
// packages: the store, the identity and keys, the HTTPS server with its health
// and metrics endpoints, and graceful shutdown.
//
// node is wiring. It holds no protocol logic of its own; each route it mounts
// belongs to the package that owns the concern. Only cmd/entente and tests
// import it.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/entente-org/entente/bridge"
	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/livekit"
	"github.com/entente-org/entente/media"
	"github.com/entente-org/entente/store"
)

// Options are the parts of a node that do not come from its Config.
type Options struct {
	Logger  *slog.Logger
	Version string
	// Listener, when set, is used instead of listening on cfg.HTTP.Listen.
	// The demo and tests listen first so that the port is known before the
	// node's public URL, and so its DID, is fixed.
	Listener net.Listener
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RetryBase shortens the outbox's first retry delay in tests.
	RetryBase time.Duration
	// MinRefetch shortens the resolver's minimum refetch interval in tests.
	MinRefetch time.Duration
	// Tool opens the node for a command-line tool (users, peers, conf):
	// it reads and writes the store but does not join the replicas of a
	// node run as several (cluster.nats_url), as it serves nothing.
	Tool bool
}

// Node is one running institution node.
type Node struct {
	cfg      config.Config
	log      *slog.Logger
	version  string
	now      func() time.Time
	did      string
	store    store.Store
	keys     *identity.Keyring
	client   *http.Client
	resolver *identity.Resolver
	registry *prometheus.Registry
	metrics  *metrics
	mux      *http.ServeMux
	server   *http.Server
	listener net.Listener
	tlsConf  *tls.Config
	fed      *federation.Service
	sfu      *media.SFU
	livekit  *livekit.Server
	// focusJoined are the Matrix guests in conferences through the focus
	// for Element Call (focus.go).
	focusJoined focusGuests
	turn        *media.TURNServer
	bridge      *bridge.Bridge
	accounts    accounts.Authenticator
	oidc        *accounts.OIDC // nil when OpenID Connect sign-in is off
	replicas    *replicaLink   // nil when the node is one process

	stopOutbox context.CancelFunc
	outboxDone chan struct{}

	inflight sync.WaitGroup // handlers running, for graceful shutdown
	sfuOnce  sync.Once

	hooksMu     sync.Mutex
	signalHooks []func(federation.Signal)
	logHooks    []func(conference string)

	closeOnce sync.Once
	closeErr  error
}

// New opens the node's store and keys and prepares its HTTPS server. Nothing
// listens until Start. On error everything opened so far is closed again.
func New(ctx context.Context, cfg config.Config, opts Options) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:      cfg,
		log:      opts.Logger,
		version:  opts.Version,
		now:      opts.Now,
		did:      cfg.DID(),
		listener: opts.Listener,
		mux:      http.NewServeMux(),
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.now == nil {
		n.now = time.Now
	}
	n.log = n.log.With("node", n.did)
	defer func() {
		if err != nil {
			n.closeResources()
		}
	}()

	n.store, err = OpenStore(ctx, cfg, n.log)
	if err != nil {
		return nil, err
	}
	n.keys, err = identity.LoadOrGenerateKeyring(ctx, KeyStorage(cfg, n.store), n.now())
	if err != nil {
		return nil, fmt.Errorf("node keys: %w", err)
	}
	if !opts.Tool {
		if err := n.openCluster(ctx); err != nil {
			return nil, err
		}
	}
	n.tlsConf, err = serverTLS(cfg, n.log)
	if err != nil {
		return nil, err
	}
	roots, err := peerRoots(cfg.Federation.CAFile)
	if err != nil {
		return nil, err
	}
	n.client = identity.NewHTTPClient(identity.ClientOptions{
		AllowPrivate: cfg.Federation.AllowPrivateAddresses,
		RootCAs:      roots,
	})
	n.resolver = identity.NewResolver(identity.ResolverOptions{
		Client:       n.client,
		TTL:          cfg.Federation.DIDCacheTTL,
		AllowPrivate: cfg.Federation.AllowPrivateAddresses,
		MinRefetch:   opts.MinRefetch,
		Logger:       n.log,
		Now:          n.now,
	})
	n.fed, err = federation.NewService(federation.Options{
		DID:       n.did,
		PublicURL: cfg.Node.PublicURL,
		Name:      cfg.Node.Name,
		Store:     n.store,
		Keys:      n.keys,
		Resolver:  n.resolver,
		HTTP:      n.client,
		Logger:    n.log,
		Now:       n.now,
		RetryBase: opts.RetryBase,
		// Every replica of the node delivers under leases of this length.
		DeliveryLease:  cfg.Federation.DeliveryLease,
		DeliveryHolder: deliveryHolder(n.store),
		OutboxWritten:  func() { n.publish(topicOutbox, nil) },
		Limits: federation.PeerLimits{
			MessagesPerSecond: float64(cfg.Federation.PeerMessagesPerSecond),
			Burst:             cfg.Federation.PeerBurst,
			OpenInvitations:   cfg.Federation.PeerOpenInvitations,
			Conferences:       cfg.Federation.PeerConferences,
		},
		LogWatcher: logWatcher{n},
		Signals:    signalReceiver{n},
		Trunks:     trunkAnswerer{n},
	})
	if err != nil {
		return nil, err
	}
	n.accounts = accounts.Authenticator{Store: n.store, Now: n.now, Origin: accounts.OriginOf(cfg.Node.PublicURL)}
	if cfg.OIDC.Enabled() {
		if n.oidc, err = accounts.NewOIDC(cfg, n.store, n.now, n.log); err != nil {
			return nil, err
		}
		n.accounts.Recheck = n.oidc.Recheck
	}
	if n.registry, n.metrics, err = newRegistry(n.version); err != nil {
		return nil, err
	}
	if err := n.registry.Register(newActivityCollector(n)); err != nil {
		return nil, fmt.Errorf("node metrics: %w", err)
	}
	if n.sfu, err = n.newSFU(); err != nil {
		return nil, err
	}
	if n.bridge, err = n.newBridge(); err != nil {
		return nil, err
	}
	n.routes()
	if err := n.mountLiveKit(); err != nil {
		return nil, err
	}
	return n, nil
}

// deliveryHolder names this process in the outbox leases. Replicas need
// PostgreSQL, and each a name of its own. A node on SQLite is one process:
// it keeps one name across restarts, so that after a crash it takes its
// leases back at once instead of waiting for them to end.
func deliveryHolder(s store.Store) string {
	if s.Backend() == store.BackendSQLite {
		return "sqlite"
	}
	return federation.NewDeliveryHolder()
}

// OpenStore opens the store the config selects: PostgreSQL when
// database.url is set, otherwise SQLite under the data directory.
func OpenStore(ctx context.Context, cfg config.Config, log *slog.Logger) (store.Store, error) {
	if err := os.MkdirAll(cfg.Node.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node.data_dir: %w", err)
	}
	s, err := store.Open(ctx, store.Options{
		DatabaseURL: cfg.Database.URL,
		SQLitePath:  filepath.Join(cfg.Node.DataDir, "entente.db"),
		Logger:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return s, nil
}

// KeyStorage returns where the config says the node's keys live.
func KeyStorage(cfg config.Config, s store.Store) identity.KeyStorage {
	if cfg.Keys.Storage == "database" {
		return storeKeys{s}
	}
	return identity.NewFileKeyStorage(filepath.Join(cfg.Node.DataDir, "keys.json"))
}

// storeKeys keeps the key ring as a secret in the store.
type storeKeys struct{ s store.Store }

const keyringSecret = "node_keyring"

func (k storeKeys) LoadKeys(ctx context.Context) ([]byte, error) {
	b, err := k.s.GetSecret(ctx, keyringSecret)
	if errors.Is(err, store.ErrNotFound) {
		return nil, identity.ErrNoKeys
	}
	return b, err
}

func (k storeKeys) SaveKeys(ctx context.Context, data []byte) error {
	return k.s.PutSecret(ctx, keyringSecret, data)
}

// DID is the node's did:web identifier.
func (n *Node) DID() string { return n.did }

// Name is the institution's display name.
func (n *Node) Name() string { return n.cfg.Node.Name }

// PublicURL is the base URL peers reach this node at.
func (n *Node) PublicURL() string { return n.cfg.Node.PublicURL }

// Store is the node's store.
func (n *Node) Store() store.Store { return n.store }

// Keys is the node's key ring.
func (n *Node) Keys() *identity.Keyring { return n.keys }

// Resolver resolves peers' DID documents.
func (n *Node) Resolver() *identity.Resolver { return n.resolver }

// HTTPClient is the SSRF-guarded client for requests to peers.
func (n *Node) HTTPClient() *http.Client { return n.client }

// Federation is the node's federation service.
func (n *Node) Federation() *federation.Service { return n.fed }

// Bridge is the node's Matrix appservice, nil when bridge.enabled is off.
func (n *Node) Bridge() *bridge.Bridge { return n.bridge }

// SFU is the node's selective forwarding unit.
func (n *Node) SFU() *media.SFU { return n.sfu }

// Accounts authenticates local users.
func (n *Node) Accounts() accounts.Authenticator { return n.accounts }

// Registry is the node's own Prometheus registry (no global state, so that
// several nodes can run in one process).
func (n *Node) Registry() *prometheus.Registry { return n.registry }

// Handle mounts a handler on the node's HTTPS server. It must be called
// before Start.
func (n *Node) Handle(pattern string, h http.Handler) {
	n.mux.Handle(pattern, n.instrument(pattern, h))
}

// Addr is the address the server listens on, once started.
func (n *Node) Addr() net.Addr {
	if n.listener == nil {
		return nil
	}
	return n.listener.Addr()
}

// Start begins serving HTTPS. It returns once the listener is open.
func (n *Node) Start() error {
	if n.replicas != nil {
		n.replicas.started.Store(true)
	}
	if n.listener == nil {
		l, err := net.Listen("tcp", n.cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen: %w", err)
		}
		n.listener = l
	}
	n.server = &http.Server{
		Handler:           n.mux,
		TLSConfig:         n.tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
		// A peer may send only this much of a body before the handler reads
		// it (HTTP/2 flow control). The federation API refuses strangers
		// and peers over their rate on the headers (spec/federation.md
		// §3.4): with the default window of 1 MiB they would still get to
		// send, and have us decrypt, a whole body that is never read.
		HTTP2: &http.HTTP2Config{MaxReceiveBufferPerStream: 64 << 10},
	}
	tl := tls.NewListener(n.listener, n.tlsConf)
	go func() {
		if err := n.server.Serve(tl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("https server stopped", "err", err)
		}
	}()
	if n.bridge != nil {
		if err := n.bridge.Start(context.Background()); err != nil {
			return fmt.Errorf("bridge: %w", err)
		}
	}
	if n.replicas != nil {
		n.replicas.startLoad(n.sfu.Sessions)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.stopOutbox, n.outboxDone = cancel, make(chan struct{})
	go func() {
		defer close(n.outboxDone)
		n.fed.RunOutbox(ctx)
	}()
	n.log.Info("node serving", "name", n.cfg.Node.Name, "addr", n.listener.Addr().String(), "public_url", n.cfg.Node.PublicURL, "store", n.store.Backend())
	return nil
}

// Shutdown stops accepting connections, lets in-flight requests finish within
// http.shutdown_timeout, then closes the store.
func (n *Node) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	var errs []error
	n.drain(ctx)
	if n.stopOutbox != nil {
		// Delivery resumes from the store at the next start.
		n.stopOutbox()
		<-n.outboxDone
	}
	// Our connections to peers are their servers' connections: closing them
	// lets peers shutting down at the same time finish at once.
	n.client.CloseIdleConnections()
	if n.server != nil {
		if err := n.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("https shutdown: %w", err))
		}
	}
	// http.Server.Shutdown does not wait for handlers of HTTP/2 streams, and
	// media WebSockets only end when the SFU closes them: wait for every
	// handler ourselves before the store goes away under them.
	if n.replicas != nil {
		// Proxied WebSockets are hijacked: Shutdown does not end them.
		n.replicas.endProxies()
	}
	n.closeSFU()
	done := make(chan struct{})
	go func() {
		n.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("https shutdown: requests still running after %s", n.cfg.HTTP.ShutdownTimeout))
	}
	if err := n.closeResources(); err != nil {
		errs = append(errs, err)
	}
	n.log.Info("node stopped")
	return errors.Join(errs...)
}

// Run starts the node and serves until ctx is cancelled, then shuts down
// gracefully.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Start(); err != nil {
		n.closeResources()
		return err
	}
	<-ctx.Done()
	return n.Shutdown(context.WithoutCancel(ctx))
}

func (n *Node) closeSFU() {
	n.sfuOnce.Do(func() {
		if n.sfu != nil {
			n.sfu.Close()
		}
		if n.turn != nil {
			n.turn.Close()
		}
	})
}

func (n *Node) closeResources() error {
	n.closeOnce.Do(func() {
		if n.bridge != nil {
			n.bridge.Stop()
		}
		n.closeSFU()
		if n.replicas != nil {
			n.replicas.close()
		}
		if n.store != nil {
			n.closeErr = n.store.Close()
		}
		if n.listener != nil && n.server == nil {
			n.listener.Close()
		}
	})
	return n.closeErr
}
