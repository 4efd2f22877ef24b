package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/devcert"
	"github.com/entente-org/entente/store/storetest"
)

// testFederation is a CA shared by the nodes of one test, so that they verify
// each other's certificates for real.
type testFederation struct {
	ca     *devcert.CA
	caFile string
	dir    string
}

func newFederation(t *testing.T) *testFederation {
	t.Helper()
	ca, err := devcert.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return &testFederation{ca: ca, caFile: caFile, dir: dir}
}

func (f *testFederation) client() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.ca.Pool()}}}
}

// start runs a real node on a loopback port with a certificate from the CA.
func (f *testFederation) start(t *testing.T, name string, edit func(*config.Config)) *Node {
	t.Helper()
	return f.startLogged(t, name, edit, nil)
}

// startLogged is start with the node logging to log.
func (f *testFederation) startLogged(t *testing.T, name string, edit func(*config.Config), log *slog.Logger) *Node {
	t.Helper()
	return f.startWith(t, name, edit, Options{Logger: log})
}

// startWith is start with opts, whose Listener and Version it sets.
func (f *testFederation) startWith(t *testing.T, name string, edit func(*config.Config), opts Options) *Node {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := f.ca.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := devcert.WriteFiles(filepath.Join(f.dir, name, "tls"), certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Node.Name = name
	cfg.Node.PublicURL = "https://" + l.Addr().String()
	cfg.Node.DataDir = filepath.Join(f.dir, name)
	cfg.HTTP.Listen = l.Addr().String()
	cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = certFile, keyFile
	cfg.Federation.AllowPrivateAddresses = true
	cfg.Federation.CAFile = f.caFile
	if edit != nil {
		edit(&cfg)
	}
	opts.Listener, opts.Version = l, "test"
	n, err := New(context.Background(), cfg, opts)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return n
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	f := newFederation(t)
	n := f.start(t, "ministry", nil)
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	c := f.client()
	base := n.PublicURL()

	if code, body := get(t, c, base+"/healthz"); code != 200 || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Fatalf("healthz: %d %s", code, body)
	}
	if code, body := get(t, c, base+"/readyz"); code != 200 || strings.TrimSpace(body) != `{"status":"ready","store":"sqlite"}` {
		t.Fatalf("readyz: %d %s", code, body)
	}
	code, body := get(t, c, base+"/.well-known/did.json")
	var doc struct {
		Context []string `json:"@context"`
		ID      string   `json:"id"`
		VM      []struct {
			ID, Type, Controller, PublicKeyMultibase string
		} `json:"verificationMethod"`
		Service []struct {
			ID, Type, ServiceEndpoint string
		} `json:"service"`
	}
	if err := json.Unmarshal([]byte(body), &doc); code != 200 || err != nil {
		t.Fatalf("did.json: %d %v %s", code, err, body)
	}
	if doc.ID != n.DID() || len(doc.VM) != 1 || doc.VM[0].ID != n.DID()+"#"+n.Keys().CurrentID() ||
		doc.VM[0].Type != "Multikey" || !strings.HasPrefix(doc.VM[0].PublicKeyMultibase, "zDn") ||
		len(doc.Service) != 1 || doc.Service[0].ServiceEndpoint != base+"/federation/v1" || len(doc.Context) == 0 {
		t.Fatalf("unexpected DID document: %s", body)
	}
	_, metrics := get(t, c, base+"/metrics")
	for _, want := range []string{
		`entente_build_info{version="test"} 1`,
		`entente_http_requests_total{code="200",route="GET /healthz"} 1`,
		`process_cpu_seconds_total`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// A closed store makes the node unready but it keeps serving.
	n.Store().Close()
	if code, body := get(t, c, base+"/readyz"); code != 503 || !strings.Contains(body, `"reason":"store cannot write"`) || !strings.Contains(body, "database is closed") {
		t.Fatalf("readyz with closed store: %d %s", code, body)
	}
	if code, _ := get(t, c, base+"/healthz"); code != 200 {
		t.Fatalf("healthz after store failure: %d", code)
	}
}

func TestPostgresBackedNode(t *testing.T) {
	url := storetest.PostgresURL(t)
	f := newFederation(t)
	n := f.start(t, "agency", func(c *config.Config) {
		c.Database.URL = url
		c.Keys.Storage = "database"
	})
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, f.client(), n.PublicURL()+"/readyz"); code != 200 || !strings.Contains(body, `"store":"postgres"`) {
		t.Fatalf("readyz: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "agency", "keys.json")); err == nil {
		t.Fatal("keys.storage=database must not write a key file")
	}
}

func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	// Peers speak HTTP/2, whose handlers http.Server.Shutdown does not wait
	// for; browsers may use either.
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1", true: "http2"}[h2], func(t *testing.T) { testGracefulShutdown(t, h2) })
	}
}

func testGracefulShutdown(t *testing.T, h2 bool) {
	f := newFederation(t)
	n := f.start(t, "ministry", nil)
	entered, release := make(chan struct{}), make(chan struct{})
	n.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	}))
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		code int
		body string
	}
	got := make(chan answer, 1)
	client := f.client()
	client.Transport.(*http.Transport).ForceAttemptHTTP2 = h2
	go func() {
		resp, err := client.Get(n.PublicURL() + "/slow")
		if err == nil && (resp.ProtoMajor == 2) != h2 {
			err = fmt.Errorf("request used %s", resp.Proto)
		}
		if err != nil {
			got <- answer{0, err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{resp.StatusCode, string(b)}
	}()
	<-entered
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("shutdown returned before the in-flight request finished: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if a := <-got; a.code != 200 || a.body != "finished" {
		t.Fatalf("in-flight request: %+v", a)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := n.Store().Ping(context.Background()); err == nil {
		t.Fatal("store still open after shutdown")
	}
}

func TestNodesResolveEachOther(t *testing.T) {
	f := newFederation(t)
	a, b := f.start(t, "ministry", nil), f.start(t, "agency", nil)
	for _, n := range []*Node{a, b} {
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
	}
	peer, err := a.Resolver().Resolve(context.Background(), b.DID())
	if err != nil {
		t.Fatal(err)
	}
	if peer.DID != b.DID() || peer.FederationEndpoint != b.FederationEndpoint() {
		t.Fatalf("resolved %+v", peer)
	}
	if _, err := peer.Key("#" + b.Keys().CurrentID()); err != nil {
		t.Fatalf("resolved document lacks b's current key: %v", err)
	}
	// An unreachable peer is an error, and the node keeps serving.
	if _, err := a.Resolver().Resolve(context.Background(), "did:web:127.0.0.1%3A1"); err == nil {
		t.Fatal("resolving an unreachable peer succeeded")
	}
	if code, _ := get(t, f.client(), a.PublicURL()+"/healthz"); code != 200 {
		t.Fatalf("healthz after failed resolution: %d", code)
	}
}

func TestSelfSignedCertificateIsKept(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Node.Name, cfg.Node.PublicURL, cfg.Node.DataDir = "A", "https://a.example", dir
	cfg.HTTP.Listen = "127.0.0.1:0"
	first, err := serverTLS(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	second, err := serverTLS(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	if string(first.Certificates[0].Certificate[0]) != string(second.Certificates[0].Certificate[0]) {
		t.Fatal("self-signed certificate was remade instead of reused")
	}
	cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = filepath.Join(dir, "missing.pem"), filepath.Join(dir, "missing-key.pem")
	if _, err := serverTLS(cfg, discard()); err == nil || !strings.Contains(err.Error(), "http.tls_cert") {
		t.Fatalf("missing operator certificate: %v", err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
