// Package nodetest starts real Entente nodes for tests: real HTTPS on
// loopback with certificates from a per-test CA, real stores, real
// federation between them. Nothing is mocked.
package nodetest

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/devcert"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/netcut"
	"github.com/entente-org/entente/internal/node"
	"github.com/entente-org/entente/internal/testwait"
	"github.com/entente-org/entente/store"
)

// Federation is a set of nodes that share a test CA.
type Federation struct {
	CA     *devcert.CA
	CAFile string
	Dir    string
	// RetryBase is the outbox's first retry delay for the nodes started.
	RetryBase time.Duration
	// MinRefetch is the resolver's minimum refetch interval for the nodes
	// started.
	MinRefetch time.Duration
	// Logger, when set, is the logger of the nodes started from then on;
	// otherwise they log only with ENTENTE_TEST_LOG set.
	Logger *slog.Logger
}

// New makes a federation whose files live in t.TempDir().
func New(t testing.TB) *Federation {
	t.Helper()
	ca, err := devcert.NewCA("Entente test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return &Federation{CA: ca, CAFile: caFile, Dir: dir, RetryBase: 50 * time.Millisecond, MinRefetch: 200 * time.Millisecond}
}

// Client is an HTTPS client trusting the federation's CA.
func (f *Federation) Client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.CA.Pool()}}}
}

// Node is a running node and what it takes to restart it.
type Node struct {
	*node.Node
	Config config.Config
	f      *Federation
}

// Start runs a node named name on a free loopback port. edit may change its
// configuration. The node is shut down when the test ends.
func (f *Federation) Start(t testing.TB, name string, edit func(*config.Config)) *Node {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := f.CA.Issue([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := devcert.WriteFiles(filepath.Join(f.Dir, name, "tls"), certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Node.Name = name
	cfg.Node.PublicURL = "https://" + l.Addr().String()
	cfg.Node.DataDir = filepath.Join(f.Dir, name)
	cfg.HTTP.Listen = l.Addr().String()
	cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = certFile, keyFile
	cfg.HTTP.ShutdownTimeout = 5 * time.Second
	cfg.Federation.AllowPrivateAddresses = true
	cfg.Federation.CAFile = f.CAFile
	cfg.Media.LoopbackCandidates = true
	if edit != nil {
		edit(&cfg)
	}
	return f.run(t, cfg, l)
}

// StartBehind is Start with the node's public URL, and so its DID, on a
// netcut proxy in front of it: peers reach the node only through the proxy,
// whose Cut partitions the node from them.
func (f *Federation) StartBehind(t testing.TB, name string, edit func(*config.Config)) (*Node, *netcut.Proxy) {
	t.Helper()
	var proxy *netcut.Proxy
	n := f.Start(t, name, func(c *config.Config) {
		var err error
		if proxy, err = netcut.Listen(c.HTTP.Listen); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { proxy.Close() })
		c.Node.PublicURL = "https://" + proxy.Addr()
		if edit != nil {
			edit(c)
		}
	})
	return n, proxy
}

func (f *Federation) run(t testing.TB, cfg config.Config, l net.Listener) *Node {
	t.Helper()
	log := f.Logger
	if log == nil {
		log = testLogger()
	}
	n, err := node.New(context.Background(), cfg, node.Options{Logger: log, Listener: l, Version: "test", RetryBase: f.RetryBase, MinRefetch: f.MinRefetch})
	if err != nil {
		l.Close()
		t.Fatalf("start node %s: %v", cfg.Node.Name, err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return &Node{Node: n, Config: cfg, f: f}
}

// Stop shuts the node down; its data stays for Restart.
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatalf("stop %s: %v", n.Name(), err)
	}
}

// Restart starts a stopped node again on the same address with the same
// data, hence the same DID and keys.
func (n *Node) Restart(t testing.TB) *Node {
	t.Helper()
	var l net.Listener
	var err error
	for range 50 { // the port was just released
		if l, err = net.Listen("tcp", n.Config.HTTP.Listen); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart %s: %v", n.Name(), err)
	}
	return n.f.run(t, n.Config, l)
}

// Trust makes every node trust every other.
func Trust(t testing.TB, nodes ...*Node) {
	t.Helper()
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			err := federation.TrustList{Store: a.Store()}.Add(context.Background(), store.Peer{
				DID: b.DID(), Name: b.Name(), MayInvite: true, MayRelayMedia: true, AddedAt: time.Now().UTC(),
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// User adds a local user to n and returns it with a fresh API token.
func User(t testing.TB, n *Node, id, displayName string) (localuser.User, string) {
	t.Helper()
	ctx := context.Background()
	u, err := accounts.AddUser(ctx, n.Store(), id, displayName, false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := accounts.IssueToken(ctx, n.Store(), id, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return localuser.User{ID: u.ID, DisplayName: u.DisplayName}, tok
}

// Eventually polls cond until it holds, for at most d (testwait.Until).
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, d, cond, "still waiting for %s", what)
}

func testLogger() *slog.Logger {
	if os.Getenv("ENTENTE_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
