// Package replicatest starts one Entente node as several real `entente
// serve` processes (replicas) behind a TCP load balancer, for tests and
// benches of docs/replicas.md. internal/localreplicas prepares the node
// (its PostgreSQL schema, TLS, settings, NATS buckets) and runs the
// processes; this package adds what tests need: failures and clean-up
// through testing.TB, each replica's log kept to wait on, and the balancer.
//
// It runs a binary built once by the caller (Build), never the node's code
// in process: users are made with the binary's CLI, placements read from
// the replicas' logs, and localreplicas' admin handle is never opened.
package replicatest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/devcert"
	"github.com/entente-org/entente/internal/localreplicas"
	"github.com/entente-org/entente/store/storetest"
)

// NATSURLEnv names the NATS server (with JetStream) of the tests.
const NATSURLEnv = "ENTENTE_TEST_NATS_URL"

// NATSURL returns the tests' NATS server; without one the test is skipped,
// or fails under CI=true.
func NATSURL(t testing.TB) string {
	t.Helper()
	return service(t, NATSURLEnv, "NATS with JetStream")
}

// service returns the server named by the variable env; without one the
// test is skipped, or fails under CI=true.
func service(t testing.TB, env, what string) string {
	t.Helper()
	u := os.Getenv(env)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: replica tests need %s (scripts/test-all starts one)", env, what)
		}
		t.Skipf("skipping replica tests: %s is not set (%s)", env, what)
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

	local *localreplicas.Node
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
	logs        *logs
	proc        *localreplicas.Replica
}

// Start runs n replicas of one node and waits until each is ready. When the
// test ends, the replicas still running are killed, and the node's schema
// and NATS buckets removed.
func Start(t testing.TB, bin string, n int, opts Options) *Node {
	t.Helper()
	natsURL := NATSURL(t)
	dbURL := service(t, storetest.DatabaseURLEnv, "PostgreSQL")
	bal, err := NewBalancer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bal.Close)
	replicas := make([]*Replica, n)
	for i := range replicas {
		replicas[i] = &Replica{logs: newLogs()}
	}
	local, err := localreplicas.Start(context.Background(), localreplicas.Options{
		Command: []string{bin}, Replicas: n, DatabaseURL: dbURL, NATSURL: natsURL,
		Dir: t.TempDir(), Name: "Ministry", PublicURL: "https://" + bal.Addr(),
		CA: opts.CA, CAFile: opts.CAFile,
		Settings: append([]string{"ENTENTE_HTTP_SHUTDOWN_TIMEOUT=20s"}, opts.Env...),
		Lines:    func(i int, line string) { replicas[i].logs.add(line) },
	})
	if err != nil {
		var tails strings.Builder
		for i, r := range replicas {
			fmt.Fprintf(&tails, "--- replica-%d log (last lines)\n%s\n", i+1, r.logs.tail(40))
		}
		t.Fatalf("%v\n%s", err, tails.String())
	}
	node := &Node{Bin: bin, PublicURL: local.PublicURL, CA: local.CA, CAFile: local.CAFile,
		Replicas: replicas, Balancer: bal, DatabaseURL: local.DatabaseURL, local: local}
	t.Cleanup(func() {
		for _, r := range replicas {
			if r.proc.Running() {
				r.proc.Kill()
			}
			if race := r.logs.find([]string{"WARNING: DATA RACE"}); race != "" {
				t.Errorf("%s: data race:\n%s", r.ID, r.logs.tail(200))
			}
			if t.Failed() {
				t.Logf("--- %s log (last lines)\n%s", r.ID, r.logs.tail(60))
			}
		}
		if err := local.Close(); err != nil {
			t.Errorf("remove the node's schema and NATS buckets: %v", err)
		}
	})
	for i, p := range local.Replicas {
		r := replicas[i]
		r.ID, r.Addr, r.URL, r.InternalURL, r.proc = p.ID, p.Addr, p.URL, p.URL, p
		bal.Add(r.Addr)
	}
	return node
}

// Kill sends SIGKILL and waits for the process to end.
func (r *Replica) Kill(t testing.TB) {
	t.Helper()
	if err := r.proc.Kill(); err != nil {
		t.Fatal(err)
	}
}

// Terminate sends SIGTERM and returns at once; Exited reports the end.
func (r *Replica) Terminate(t testing.TB) {
	t.Helper()
	if err := r.proc.Terminate(); err != nil {
		t.Fatal(err)
	}
}

// Pid is the process's id, which names it in the outbox leases it holds.
func (r *Replica) Pid() int { return r.proc.Pid() }

// Exited is closed when the process has ended; ExitErr is then its status.
func (r *Replica) Exited() <-chan struct{} { return r.proc.Exited() }

// ExitErr is the process's exit status once Exited is closed.
func (r *Replica) ExitErr() error { return r.proc.ExitErr() }

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
	cmd.Env = append(os.Environ(), n.Replicas[0].proc.Env...)
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
	c := n.local.HTTPClient()
	c.Timeout = 20 * time.Second
	return c
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

func (l *logs) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < maxLogLines {
		l.lines = append(l.lines, line)
	}
	close(l.grew)
	l.grew = make(chan struct{})
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
