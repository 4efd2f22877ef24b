// Package localfed starts a federation of complete nodes on 127.0.0.1, as
// `entente demo` and the benchmarks run it: one local certificate authority
// issues every node's TLS certificate, so that the nodes verify each other for
// real; the nodes trust each other and have resolved each other's DID
// documents before anything is measured or shown.
//
// It starts nodes through internal/node and changes them only through their
// public methods and store, as an administrator would.
package localfed

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/devcert"
	"github.com/entente-org/entente/internal/node"
)

// NewCA makes the certificate authority of a local federation (the demo, a
// benchmark) and writes it as <dir>/<name>-ca.pem for the nodes to trust.
func NewCA(dir, name string, validity time.Duration) (*devcert.CA, string, error) {
	ca, err := devcert.NewCA("Entente "+name+" CA", validity)
	if err != nil {
		return nil, "", err
	}
	caFile := filepath.Join(dir, name+"-ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		return nil, "", err
	}
	return ca, caFile, nil
}

// Node is a node of a federation on 127.0.0.1 whose TLS certificates come
// from one local CA, as the demo and the benchmarks run them.
type Node struct {
	Name    string
	DataDir string
	CA      *devcert.CA
	CAFile  string
	Log     *slog.Logger
	// Version is the build the node reports (entente_build_info).
	Version string
	// DatabaseURL selects PostgreSQL; empty means SQLite in DataDir.
	DatabaseURL string
	// UDPPort, if not 0, is the node's one UDP port for media.
	UDPPort int
	// PublicAddr, if set, is the host:port of the node's public URL, for a
	// node that peers reach through a proxy; otherwise it is l's address.
	PublicAddr string
	// Bridge configures the Matrix bridge, off unless Enabled.
	Bridge config.Bridge
}

// Start starts a node serving on l, which it closes on failure.
func Start(ctx context.Context, l net.Listener, ln Node) (*node.Node, error) {
	addr := l.Addr().String()
	certPEM, keyPEM, err := ln.CA.Issue([]string{"127.0.0.1", "localhost"}, 30*24*time.Hour)
	if err != nil {
		l.Close()
		return nil, err
	}
	certFile, keyFile, err := devcert.WriteFiles(filepath.Join(ln.DataDir, "tls"), certPEM, keyPEM)
	if err != nil {
		l.Close()
		return nil, err
	}
	cfg := config.Default()
	cfg.Node.Name = ln.Name
	cfg.Node.PublicURL = "https://" + addr
	if ln.PublicAddr != "" {
		cfg.Node.PublicURL = "https://" + ln.PublicAddr
	}
	cfg.Node.DataDir = ln.DataDir
	cfg.Database.URL = ln.DatabaseURL
	cfg.HTTP.Listen = addr
	cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = certFile, keyFile
	cfg.HTTP.ShutdownTimeout = 5 * time.Second
	cfg.Federation.AllowPrivateAddresses = true // a local federation, on loopback
	cfg.Federation.CAFile = ln.CAFile
	cfg.Media.LoopbackCandidates = true // browsers and nodes on this machine
	cfg.Media.UDPPort = ln.UDPPort
	cfg.Log.Format = "text"
	cfg.LiveKit = config.NewLiveKitCredentials()
	if ln.Bridge.Enabled {
		cfg.Bridge = ln.Bridge
	}
	n, err := node.New(ctx, cfg, node.Options{Logger: ln.Log, Version: ln.Version, Listener: l})
	if err != nil {
		l.Close()
		return nil, err
	}
	if err := n.Start(); err != nil {
		n.Shutdown(context.Background())
		return nil, err
	}
	return n, nil
}

// ShutdownAll stops the nodes together, so that no node waits for another's
// open connections.
func ShutdownAll(nodes []*node.Node) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { n.Shutdown(context.Background()) })
	}
	wg.Wait()
}
