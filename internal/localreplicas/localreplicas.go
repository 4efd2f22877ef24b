// Package localreplicas runs one Entente node as several `entente serve`
// processes on 127.0.0.1 (docs/replicas.md), for `entente bench media
// --replicas`, the tests of spanning and failover, and internal/replicatest:
// a PostgreSQL schema of its own, TLS from a local CA, keys in the database,
// and the replicas coordinating through a NATS server with JetStream under a
// node key of their own, whose buckets Close removes.
//
// The replicas are real processes, so that one can be killed (SIGKILL) or
// drained (SIGTERM) and each one's CPU time read from /proc. An admin handle
// on the same store (a node.Node that is never started and is no replica),
// opened only when first needed, creates the users, conferences and tokens.
package localreplicas

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/entente-org/entente/internal/cluster"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/devcert"
	"github.com/entente-org/entente/internal/localfed"
	"github.com/entente-org/entente/internal/node"
)

// Options describe the node to run.
type Options struct {
	// Command runs the entente binary: its path and any arguments before
	// "serve".
	Command []string
	// Env is added to the replicas' environment (a test binary's switch to
	// run main, for instance); the replicas' settings override it.
	Env []string
	// Settings are ENTENTE_* settings of every replica; they override the
	// node's own (below) but not those that make each replica itself
	// (listen address, replica ID, internal_url, data directory).
	Settings []string
	// Replicas is how many processes to start (at least 1).
	Replicas int
	// DatabaseURL is the PostgreSQL server; the node gets a schema of its
	// own there, dropped by Close.
	DatabaseURL string
	// NATSURL is the NATS server with JetStream.
	NATSURL string
	// MaxParticipants is cluster.max_participants of every replica; 0
	// leaves the default.
	MaxParticipants int
	// Dir holds the CA, the certificates and the replicas' data
	// directories.
	Dir string
	// Log receives the replicas' warnings and errors; nil discards them.
	Log io.Writer
	// Lines, when set, receives every line replica i writes to its
	// standard error, as it comes.
	Lines func(i int, line string)
	// Name is the node's name.
	Name string
	// PublicURL is the node's (a load balancer's) address; by default the
	// first replica's.
	PublicURL string
	// CA and CAFile, when set, issue the replicas' certificate and are
	// trusted for peers: those of the nodes the node federates with. By
	// default a CA of the node's own is made in Dir.
	CA     *devcert.CA
	CAFile string
}

// readyLimit bounds a replica's start.
const readyLimit = 60 * time.Second

// Node is the running node.
type Node struct {
	// DID and PublicURL are the node's: every replica shares them.
	DID, PublicURL string
	CA             *devcert.CA
	CAFile         string
	// DatabaseURL is the replicas' PostgreSQL: its search_path is the
	// node's own schema.
	DatabaseURL string
	Replicas    []*Replica

	opts     Options
	drop     func() error
	certFile string
	keyFile  string

	adminMu sync.Mutex
	admin   *node.Node
}

// Start starts the node's replicas, one after the other (the first makes
// the keys in the database, the others read them), and returns once every
// one is ready.
func Start(ctx context.Context, o Options) (_ *Node, err error) {
	if o.Replicas < 1 || len(o.Command) == 0 || o.DatabaseURL == "" || o.NATSURL == "" {
		return nil, errors.New("localreplicas: a command, at least one replica, a database URL and a NATS URL are required")
	}
	if o.Name == "" {
		o.Name = "Replicated node"
	}
	n := &Node{opts: o, CA: o.CA, CAFile: o.CAFile}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.CA == nil {
		if n.CA, n.CAFile, err = localfed.NewCA(o.Dir, "replicas", 24*time.Hour); err != nil {
			return nil, err
		}
	}
	certPEM, keyPEM, err := n.CA.Issue([]string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if n.certFile, n.keyFile, err = devcert.WriteFiles(filepath.Join(o.Dir, "tls"), certPEM, keyPEM); err != nil {
		return nil, err
	}
	if n.DatabaseURL, n.drop, err = schema(ctx, o.DatabaseURL); err != nil {
		return nil, err
	}
	for i := range o.Replicas {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		n.Replicas = append(n.Replicas, &Replica{ID: fmt.Sprintf("replica-%d", i+1), Addr: addr, URL: "https://" + addr})
	}
	n.PublicURL = o.PublicURL
	if n.PublicURL == "" {
		n.PublicURL = n.Replicas[0].URL
	}
	cfg := n.adminConfig()
	n.DID = cfg.DID()
	for i, r := range n.Replicas {
		r.Env = n.replicaEnv(r)
		if err := n.start(ctx, i); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (n *Node) adminConfig() config.Config {
	cfg := config.Default()
	cfg.Node.Name = n.opts.Name
	cfg.Node.PublicURL = n.PublicURL
	cfg.Node.DataDir = filepath.Join(n.opts.Dir, "admin")
	cfg.Database.URL = n.DatabaseURL
	cfg.Keys.Storage = "database"
	cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = n.certFile, n.keyFile
	cfg.Federation.AllowPrivateAddresses = true
	cfg.Federation.CAFile = n.CAFile
	cfg.Log.Format = "text"
	return cfg
}

// replicaEnv is r's settings: the node's, Options.Settings, then r's own.
func (n *Node) replicaEnv(r *Replica) []string {
	env := []string{
		"ENTENTE_NODE_NAME=" + n.opts.Name,
		"ENTENTE_NODE_PUBLIC_URL=" + n.PublicURL,
		"ENTENTE_HTTP_TLS_CERT=" + n.certFile, "ENTENTE_HTTP_TLS_KEY=" + n.keyFile,
		"ENTENTE_FEDERATION_CA_FILE=" + n.CAFile,
		"ENTENTE_FEDERATION_ALLOW_PRIVATE_ADDRESSES=true",
		"ENTENTE_DATABASE_URL=" + n.DatabaseURL,
		"ENTENTE_KEYS_STORAGE=database",
		"ENTENTE_CLUSTER_NATS_URL=" + n.opts.NATSURL,
		"ENTENTE_MEDIA_LOOPBACK_CANDIDATES=true",
		"ENTENTE_LOG_FORMAT=text",
		"ENTENTE_LOG_LEVEL=info",
	}
	if n.opts.MaxParticipants > 0 {
		env = append(env, fmt.Sprintf("ENTENTE_CLUSTER_MAX_PARTICIPANTS=%d", n.opts.MaxParticipants))
	}
	env = append(env, n.opts.Settings...)
	return append(env,
		"ENTENTE_HTTP_LISTEN="+r.Addr,
		"ENTENTE_CLUSTER_REPLICA_ID="+r.ID,
		"ENTENTE_CLUSTER_INTERNAL_URL="+r.URL,
		"ENTENTE_NODE_DATA_DIR="+filepath.Join(n.opts.Dir, r.ID),
	)
}

// Close stops every running replica (SIGTERM, then SIGKILL after 10 s),
// closes the admin handle, removes the node's NATS buckets and drops its
// schema.
func (n *Node) Close() error {
	var wg sync.WaitGroup
	stopErrs := make([]error, len(n.Replicas))
	for i, r := range n.Replicas {
		if !r.Running() {
			continue
		}
		wg.Go(func() { stopErrs[i] = r.stop(10 * time.Second) })
	}
	wg.Wait()
	errs := stopErrs
	n.adminMu.Lock()
	if n.admin != nil {
		errs = append(errs, n.admin.Shutdown(context.Background()))
	}
	n.adminMu.Unlock()
	if n.DID != "" {
		errs = append(errs, deleteBuckets(n.opts.NATSURL, cluster.NodeKeyFor(n.DID)))
	}
	if n.drop != nil {
		errs = append(errs, n.drop())
	}
	return errors.Join(errs...)
}

// deleteBuckets removes the node's key-value buckets from NATS.
func deleteBuckets(natsURL, key string) error {
	nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, b := range []string{"replicas", "placement", "spans"} {
		if err := js.DeleteKeyValue(ctx, "entente_"+key+"_"+b); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			return fmt.Errorf("NATS bucket %s: %w", b, err)
		}
	}
	return nil
}

// schema creates a schema of its own on the PostgreSQL server at base and
// returns a URL selecting it, and a function that drops it.
func schema(ctx context.Context, base string) (string, func() error, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("database URL must be a postgres:// URL")
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "entente_replicas_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", nil, fmt.Errorf("create schema %s: %w", name, err)
	}
	q := u.Query()
	q.Set("search_path", name)
	nu := *u
	nu.RawQuery = q.Encode()
	drop := func() error {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(dctx, base)
		if err != nil {
			return fmt.Errorf("drop schema %s: %w", name, err)
		}
		defer c.Close(dctx)
		if _, err := c.Exec(dctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			return fmt.Errorf("drop schema %s: %w", name, err)
		}
		return nil
	}
	return nu.String(), drop, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Owner returns the index of the replica that owns conference.
func (n *Node) Owner(ctx context.Context, conference string) (int, error) {
	nc, err := nats.Connect(n.opts.NATSURL, nats.Timeout(5*time.Second))
	if err != nil {
		return 0, fmt.Errorf("NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	id, err := cluster.RecordedOwner(ctx, js, cluster.NodeKeyFor(n.DID), conference)
	if err != nil {
		return 0, err
	}
	for i, r := range n.Replicas {
		if r.ID == id {
			return i, nil
		}
	}
	return 0, fmt.Errorf("conference %s is placed on %q, not one of this node's replicas", conference, id)
}
