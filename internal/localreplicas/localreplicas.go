// Package localreplicas runs one Entente node as several `entente serve`
// processes on 127.0.0.1 (docs/replicas.md), for `entente bench media
// --replicas` and the tests of spanning and failover: a PostgreSQL schema
// of its own, a local CA, keys in the database, and the replicas
// coordinating through a NATS server with JetStream.
//
// The replicas are real processes, so that one can be killed (SIGKILL) and
// each one's CPU time read from /proc. An admin handle on the same store
// (a node.Node that is never started and is no replica) creates the users,
// conferences and tokens.
package localreplicas

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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
	// Replicas is how many processes to start (at least 1).
	Replicas int
	// DatabaseURL is the PostgreSQL server; the node gets a schema of its
	// own there, dropped by Close.
	DatabaseURL string
	// NATSURL is the NATS server with JetStream.
	NATSURL string
	// MaxParticipants is cluster.max_participants of every replica.
	MaxParticipants int
	// Dir holds the CA, the certificates and the replicas' data
	// directories.
	Dir string
	// Log receives the replicas' warnings and errors; nil discards them.
	Log io.Writer
	// Name is the node's name.
	Name string
}

// readyLimit bounds a replica's start.
const readyLimit = 60 * time.Second

// Node is the running node.
type Node struct {
	// DID and PublicURL are the node's: every replica shares them.
	DID, PublicURL string
	CA             *devcert.CA
	CAFile         string
	// Admin is a handle on the node's store and keys for preparing users
	// and conferences; it serves nothing.
	Admin    *node.Node
	Replicas []*Replica

	opts     Options
	dbURL    string
	drop     func() error
	certFile string
	keyFile  string
}

// Replica is one process of the node.
type Replica struct {
	ID  string
	URL string // https://127.0.0.1:port, also its internal_url
	Env []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	// exitErr is the process's end, read after done is closed.
	exitErr error
}

// Start starts the node's replicas and returns once every one is ready.
func Start(ctx context.Context, o Options) (_ *Node, err error) {
	if o.Replicas < 1 || len(o.Command) == 0 || o.DatabaseURL == "" || o.NATSURL == "" {
		return nil, errors.New("localreplicas: a command, at least one replica, a database URL and a NATS URL are required")
	}
	if o.Name == "" {
		o.Name = "Replicated node"
	}
	n := &Node{opts: o}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.CA, n.CAFile, err = localfed.NewCA(o.Dir, "replicas", 24*time.Hour); err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := n.CA.Issue([]string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if n.certFile, n.keyFile, err = devcert.WriteFiles(filepath.Join(o.Dir, "tls"), certPEM, keyPEM); err != nil {
		return nil, err
	}
	if n.dbURL, n.drop, err = schema(ctx, o.DatabaseURL); err != nil {
		return nil, err
	}
	ports := make([]int, o.Replicas)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	// The first replica's address stands for the load balancer in the
	// node's public URL: the DID is the same for all.
	n.PublicURL = fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	cfg := n.adminConfig()
	n.DID = cfg.DID()
	if n.Admin, err = node.New(ctx, cfg, node.Options{}); err != nil {
		return nil, fmt.Errorf("admin handle: %w", err)
	}
	for i, port := range ports {
		r := &Replica{ID: fmt.Sprintf("r%d", i+1), URL: fmt.Sprintf("https://127.0.0.1:%d", port)}
		r.Env = n.replicaEnv(r, port)
		n.Replicas = append(n.Replicas, r)
	}
	for _, r := range n.Replicas {
		if err := n.start(ctx, r); err != nil {
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
	cfg.Database.URL = n.dbURL
	cfg.Keys.Storage = "database"
	cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = n.certFile, n.keyFile
	cfg.Federation.AllowPrivateAddresses = true
	cfg.Federation.CAFile = n.CAFile
	cfg.Log.Format = "text"
	return cfg
}

func (n *Node) replicaEnv(r *Replica, port int) []string {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	return []string{
		"ENTENTE_NODE_NAME=" + n.opts.Name,
		"ENTENTE_NODE_PUBLIC_URL=" + n.PublicURL,
		"ENTENTE_NODE_DATA_DIR=" + filepath.Join(n.opts.Dir, r.ID),
		"ENTENTE_HTTP_LISTEN=" + addr,
		"ENTENTE_HTTP_TLS_CERT=" + n.certFile, "ENTENTE_HTTP_TLS_KEY=" + n.keyFile,
		"ENTENTE_FEDERATION_CA_FILE=" + n.CAFile,
		"ENTENTE_FEDERATION_ALLOW_PRIVATE_ADDRESSES=true",
		"ENTENTE_DATABASE_URL=" + n.dbURL,
		"ENTENTE_KEYS_STORAGE=database",
		"ENTENTE_CLUSTER_NATS_URL=" + n.opts.NATSURL,
		"ENTENTE_CLUSTER_REPLICA_ID=" + r.ID,
		"ENTENTE_CLUSTER_INTERNAL_URL=https://" + addr,
		fmt.Sprintf("ENTENTE_CLUSTER_MAX_PARTICIPANTS=%d", max(n.opts.MaxParticipants, 1)),
		"ENTENTE_MEDIA_LOOPBACK_CANDIDATES=true",
		"ENTENTE_LOG_FORMAT=text",
		"ENTENTE_LOG_LEVEL=info",
	}
}

// start runs r's process and waits for it to be ready.
func (n *Node) start(ctx context.Context, r *Replica) error {
	args := append(append([]string{}, n.opts.Command[1:]...), "serve")
	cmd := exec.Command(n.opts.Command[0], args...)
	// The replica's own settings come last: they win over any of the
	// same name in the environment.
	cmd.Env = append(append(os.Environ(), n.opts.Env...), r.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("replica %s: %w", r.ID, err)
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "node ready") {
				once.Do(func() { close(ready) })
			}
			if w := n.opts.Log; w != nil && (strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || strings.Contains(line, "DATA RACE")) {
				fmt.Fprintf(w, "replica %s: %s\n", r.ID, line)
			}
		}
		r.exitErr = cmd.Wait()
		close(done)
	}()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	t := time.NewTimer(readyLimit)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-done:
		return fmt.Errorf("replica %s exited before it was ready (%v)", r.ID, cmd.ProcessState)
	case <-t.C:
		return fmt.Errorf("replica %s not ready within %s", r.ID, readyLimit)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill ends replica i with SIGKILL: no drain, no goodbye to the roster.
func (n *Node) Kill(i int) error {
	r := n.Replicas[i]
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("replica %s is not running", r.ID)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill replica %s: %w", r.ID, err)
	}
	<-done
	return nil
}

// Running reports whether replica i's process is alive.
func (n *Node) Running(i int) bool {
	r := n.Replicas[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// CPU is the CPU time (user and system) the running replicas have spent,
// from /proc/<pid>/stat.
func (n *Node) CPU() (time.Duration, error) {
	var total time.Duration
	for i, r := range n.Replicas {
		if !n.Running(i) {
			continue
		}
		r.mu.Lock()
		pid := r.cmd.Process.Pid
		r.mu.Unlock()
		d, err := processCPU(pid)
		if err != nil {
			return 0, fmt.Errorf("replica %s: %w", r.ID, err)
		}
		total += d
	}
	return total, nil
}

// Close stops every replica (SIGTERM, then SIGKILL after 10 s), closes the
// admin handle, removes the node's NATS buckets and drops its schema.
func (n *Node) Close() error {
	var wg sync.WaitGroup
	stopErrs := make([]error, len(n.Replicas))
	for i, r := range n.Replicas {
		if !n.Running(i) {
			continue
		}
		wg.Go(func() {
			r.mu.Lock()
			cmd, done := r.cmd, r.done
			r.mu.Unlock()
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
				if r.exitErr != nil {
					// A replica stopped with SIGTERM drains and exits 0.
					stopErrs[i] = fmt.Errorf("replica %s stopped badly: %w", r.ID, r.exitErr)
				}
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				stopErrs[i] = fmt.Errorf("replica %s did not stop within 10 s of SIGTERM", r.ID)
			}
		})
	}
	wg.Wait()
	errs := stopErrs
	if n.Admin != nil {
		errs = append(errs, n.Admin.Shutdown(context.Background()))
	}
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
