// Package replicatest starts one Entente node as several real `entente
// serve` processes (replicas) sharing a PostgreSQL schema of their own and a
// NATS server with JetStream, behind a TCP load balancer, for tests and
// benches of docs/replicas.md.
//
// It runs a binary built once by the caller (Build), never the code in
// process: what is tested is what is deployed. It must not import
// internal/node or internal/cluster.
package replicatest

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/devcert"
	"github.com/entente-org/entente/store/storetest"
)

// NATSURLEnv names the NATS server (with JetStream) of the tests.
const NATSURLEnv = "ENTENTE_TEST_NATS_URL"

// NATSURL returns the tests' NATS server; without one the test is skipped,
// or fails under CI=true.
func NATSURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(NATSURLEnv)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: replica tests need NATS with JetStream (scripts/test-all starts one)", NATSURLEnv)
		}
		t.Skipf("skipping replica tests: %s is not set (NATS with JetStream)", NATSURLEnv)
	}
	return u
}

// Build compiles cmd/entente into dir and returns the binary's path; with
// the race detector when the caller runs with it, so that a data race in a
// replica fails the test that started it.
func Build(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "entente")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/entente")...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/entente: %v\n%s", err, b)
	}
	return bin, nil
}

// Node is one node run as replicas behind a load balancer.
type Node struct {
	Bin       string
	PublicURL string // the load balancer's address: the node's DID
	CA        *devcert.CA
	CAFile    string
	Replicas  []*Replica
	Balancer  *Balancer
	// DatabaseURL is the replicas' PostgreSQL, a schema of this test's own.
	DatabaseURL string

	env []string
	dir string
}

// Options shape a Node.
type Options struct {
	// Env adds ENTENTE_* settings to every replica.
	Env []string
	// CA and CAFile, when set, issue the replicas' certificates and are
	// trusted for peers: those of the nodes a test federates with.
	CA     *devcert.CA
	CAFile string
}

// Replica is one `entente serve` process.
type Replica struct {
	ID          string
	Addr        string // 127.0.0.1:port
	URL         string // https://Addr: this replica alone
	InternalURL string
	cmd         *exec.Cmd
	env         []string
	bin         string
	logs        *logs
	exited      chan struct{}
	exitErr     error
}

// Start runs n replicas of one node and waits until each is ready.
func Start(t testing.TB, bin string, n int, opts Options) *Node {
	t.Helper()
	natsURL := NATSURL(t)
	dbURL := storetest.PostgresURL(t)
	dir := t.TempDir()
	ca, caFile := opts.CA, opts.CAFile
	if ca == nil {
		var err error
		if ca, err = devcert.NewCA("Entente replica test CA", time.Hour); err != nil {
			t.Fatal(err)
		}
		caFile = filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bal, err := NewBalancer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bal.Close)
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := devcert.WriteFiles(filepath.Join(dir, "tls"), certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	node := &Node{Bin: bin, PublicURL: "https://" + bal.Addr(), CA: ca, CAFile: caFile, Balancer: bal, DatabaseURL: dbURL, dir: dir}
	node.env = append([]string{
		"ENTENTE_NODE_NAME=Ministry", "ENTENTE_NODE_PUBLIC_URL=" + node.PublicURL,
		"ENTENTE_DATABASE_URL=" + dbURL, "ENTENTE_KEYS_STORAGE=database",
		"ENTENTE_CLUSTER_NATS_URL=" + natsURL,
		"ENTENTE_HTTP_TLS_CERT=" + certFile, "ENTENTE_HTTP_TLS_KEY=" + keyFile,
		"ENTENTE_FEDERATION_CA_FILE=" + caFile, "ENTENTE_FEDERATION_ALLOW_PRIVATE_ADDRESSES=true",
		"ENTENTE_MEDIA_LOOPBACK_CANDIDATES=true", "ENTENTE_HTTP_SHUTDOWN_TIMEOUT=20s",
		"ENTENTE_LOG_FORMAT=text", "ENTENTE_LOG_LEVEL=info",
	}, opts.Env...)
	// The first replica makes the keys in the database; the others read
	// them, so they start after it.
	for i := range n {
		r := node.newReplica(t, fmt.Sprintf("replica-%d", i+1))
		r.start(t)
		node.Replicas = append(node.Replicas, r)
		bal.Add(r.Addr)
	}
	return node
}

func (n *Node) newReplica(t testing.TB, id string) *Replica {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := &Replica{ID: id, Addr: addr, URL: "https://" + addr, InternalURL: "https://" + addr, bin: n.Bin}
	r.env = append(append([]string{}, n.env...),
		"ENTENTE_HTTP_LISTEN="+addr, "ENTENTE_CLUSTER_REPLICA_ID="+id,
		"ENTENTE_CLUSTER_INTERNAL_URL="+r.InternalURL,
		"ENTENTE_NODE_DATA_DIR="+filepath.Join(n.dir, id))
	return r
}

func (r *Replica) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(r.bin, "serve")
	cmd.Env = append(os.Environ(), r.env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd, r.logs, r.exited = cmd, newLogs(), make(chan struct{})
	go func() {
		r.logs.read(stderr)
		r.exitErr = cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-r.exited
		if race := r.logs.find([]string{"WARNING: DATA RACE"}); race != "" {
			t.Errorf("%s: data race:\n%s", r.ID, r.logs.tail(200))
		}
		if t.Failed() {
			t.Logf("--- %s log (last lines)\n%s", r.ID, r.logs.tail(60))
		}
	})
	if err := r.logs.wait("node ready", 60*time.Second, r.exited); err != nil {
		t.Fatalf("%s: %v\n%s", r.ID, err, r.logs.tail(40))
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (r *Replica) Kill(t testing.TB) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.exited
}

// Terminate sends SIGTERM and returns at once; Exited reports the end.
func (r *Replica) Terminate(t testing.TB) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// Pid is the process's id, which names it in the outbox leases it holds.
func (r *Replica) Pid() int { return r.cmd.Process.Pid }

// Exited is closed when the process has ended; ExitErr is then its status.
func (r *Replica) Exited() <-chan struct{} { return r.exited }

// ExitErr is the process's exit status once Exited is closed.
func (r *Replica) ExitErr() error { return r.exitErr }

// WaitLog waits for a log line containing every part and returns it.
func (r *Replica) WaitLog(parts []string, within time.Duration) (string, error) {
	return r.logs.waitAll(parts, within)
}

// HasLog reports whether a line containing every part was logged.
func (r *Replica) HasLog(parts ...string) bool { return r.logs.find(parts) != "" }

// Logs returns the replica's last n log lines.
func (r *Replica) Logs(n int) string { return r.logs.tail(n) }

// CLI runs the entente binary with the node's settings (its database) and
// returns its standard output.
func (n *Node) CLI(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(n.Bin, args...)
	cmd.Env = append(os.Environ(), n.Replicas[0].env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("entente %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// User adds a local user and returns an API token for them.
func (n *Node) User(t testing.TB, name string) string {
	t.Helper()
	n.CLI(t, "users", "add", name)
	return n.CLI(t, "token", "issue", name)
}

// HTTPClient trusts the node's CA.
func (n *Node) HTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(n.CA.PEM)
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: false,
	}}
}

// WebSocketClient trusts the node's CA and has no overall timeout, which
// would end a WebSocket (the dial has its own).
func (n *Node) WebSocketClient() *http.Client {
	c := n.HTTPClient()
	c.Timeout = 0
	return c
}

// API calls the client API at base (a replica's URL or the public URL) as
// the holder of token, and decodes a JSON answer into out when not nil.
func (n *Node) API(base, token, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, base+"/api/v1"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// logs keeps a process's log lines and lets tests wait for one.
type logs struct {
	mu    sync.Mutex
	lines []string
	grew  chan struct{}
}

const maxLogLines = 20000

func newLogs() *logs { return &logs{grew: make(chan struct{})} }

func (l *logs) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		if len(l.lines) < maxLogLines {
			l.lines = append(l.lines, sc.Text())
		}
		close(l.grew)
		l.grew = make(chan struct{})
		l.mu.Unlock()
	}
}

func (l *logs) find(parts []string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			return line
		}
	}
	return ""
}

// all returns every line containing every part.
func (l *logs) all(parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

func (l *logs) wait(part string, within time.Duration, exited <-chan struct{}) error {
	deadline := time.After(within)
	for {
		if l.find([]string{part}) != "" {
			return nil
		}
		l.mu.Lock()
		grew := l.grew
		l.mu.Unlock()
		select {
		case <-grew:
		case <-exited:
			if l.find([]string{part}) != "" {
				return nil
			}
			return fmt.Errorf("exited before logging %q", part)
		case <-deadline:
			return fmt.Errorf("no %q logged within %s", part, within)
		}
	}
}

func (l *logs) waitAll(parts []string, within time.Duration) (string, error) {
	deadline := time.After(within)
	for {
		if line := l.find(parts); line != "" {
			return line, nil
		}
		l.mu.Lock()
		grew := l.grew
		l.mu.Unlock()
		select {
		case <-grew:
		case <-deadline:
			return "", fmt.Errorf("no line with %q logged within %s", parts, within)
		}
	}
}

func (l *logs) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := max(0, len(l.lines)-n)
	return strings.Join(l.lines[from:], "\n")
}

// ctxSleep waits d or until ctx ends.
func ctxSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
