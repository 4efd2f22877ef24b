package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func nodeEnv(t *testing.T) (dir string, env []string) {
	t.Helper()
	dir = t.TempDir()
	return dir, []string{
		"ENTENTE_NODE_NAME=Test Ministry",
		"ENTENTE_NODE_PUBLIC_URL=https://ministry.example",
		"ENTENTE_NODE_DATA_DIR=" + filepath.Join(dir, "data"),
		"ENTENTE_LOG_FORMAT=text",
	}
}

func TestKeysGenerateRotateList(t *testing.T) {
	for _, storage := range []string{"file", "database"} {
		t.Run(storage, func(t *testing.T) {
			dir, env := nodeEnv(t)
			env = append(env, "ENTENTE_KEYS_STORAGE="+storage)
			r := runCLI(t, env, "keys", "generate")
			if r.code != 0 || !strings.HasPrefix(r.stdout, "generated key ") || !strings.Contains(r.stdout, "did:web:ministry.example") {
				t.Fatalf("generate: %+v", r)
			}
			first := strings.Fields(r.stdout)[2]
			if r := runCLI(t, env, "keys", "generate"); r.code != 1 || r.stderr == "" {
				t.Fatalf("second generate must refuse: %+v", r)
			}
			r = runCLI(t, env, "keys", "rotate", "--overlap", "2h")
			if r.code != 0 || !strings.Contains(r.stdout, first+" stays verify-only until") {
				t.Fatalf("rotate: %+v", r)
			}
			r = runCLI(t, env, "keys", "list")
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if r.code != 0 || len(lines) != 3 {
				t.Fatalf("list: %+v", r)
			}
			if !strings.Contains(lines[1], " current ") || !strings.HasPrefix(lines[2], first) || !strings.Contains(lines[2], "verify-only") {
				t.Fatalf("list rows wrong:\n%s", r.stdout)
			}
			keyFile := filepath.Join(dir, "data", "keys.json")
			_, err := os.Stat(keyFile)
			if storage == "file" && err != nil {
				t.Fatalf("file storage wrote no %s: %v", keyFile, err)
			}
			if storage == "database" && err == nil {
				t.Fatalf("database storage must not write %s", keyFile)
			}
		})
	}
}

func TestKeysRotateWithoutKeys(t *testing.T) {
	_, env := nodeEnv(t)
	r := runCLI(t, env, "keys", "rotate")
	if r.code != 1 || !strings.Contains(r.stderr, "no keys") {
		t.Fatalf("%+v", r)
	}
}

func TestServeRefusesCorruptedKeyFile(t *testing.T) {
	dir, env := nodeEnv(t)
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	os.WriteFile(filepath.Join(dir, "data", "keys.json"), []byte(`{"version":1,"keys":[{"id":"k","private_multibase":"zNotAKey"`), 0o600)
	r := runCLI(t, append(env, "ENTENTE_HTTP_LISTEN=127.0.0.1:0"), "serve")
	if r.code != 1 || !strings.Contains(r.stderr, "keys.json") || strings.Contains(r.stderr, "goroutine") {
		t.Fatalf("%+v", r)
	}
}

// freePort finds a loopback port for a subprocess to listen on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServe runs `entente serve` as a real subprocess and waits until it
// logs that it is ready.
func startServe(t *testing.T, env []string) (*exec.Cmd, string, *logTail) {
	t.Helper()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = append(append(os.Environ(), env...), "ENTENTE_TEST_RUN_MAIN=1", "ENTENTE_HTTP_LISTEN="+addr)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	tail := &logTail{lines: make(chan string, 256)}
	go tail.read(stderr)
	if _, err := tail.waitFor("node ready", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return cmd, addr, tail
}

type logTail struct{ lines chan string }

func (l *logTail) read(r io.Reader) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		l.lines <- s.Text()
	}
	close(l.lines)
}

func (l *logTail) waitFor(substr string, d time.Duration) (string, error) {
	deadline := time.After(d)
	for {
		select {
		case line, ok := <-l.lines:
			if !ok {
				return "", fmt.Errorf("process ended before logging %q", substr)
			}
			if strings.Contains(line, substr) {
				return line, nil
			}
		case <-deadline:
			return "", fmt.Errorf("no %q logged within %s", substr, d)
		}
	}
}

func insecureClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

func TestServeAndStopOnSIGTERM(t *testing.T) {
	dir, env := nodeEnv(t)
	cmd, addr, tail := startServe(t, env)
	resp, err := insecureClient().Get("https://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"store":"sqlite"`) {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
	// The SQLite default lives under the data directory, with a self-signed
	// certificate and the key file beside it.
	for _, f := range []string{"entente.db", "keys.json", "tls/cert.pem"} {
		if _, err := os.Stat(filepath.Join(dir, "data", f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	hc := exec.Command(os.Args[0], "healthcheck")
	hc.Env = append(append(os.Environ(), env...), "ENTENTE_TEST_RUN_MAIN=1", "ENTENTE_HTTP_LISTEN="+addr)
	if out, err := hc.CombinedOutput(); err != nil || string(out) != "ready\n" {
		t.Fatalf("healthcheck: %v %q", err, out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := tail.waitFor("node stopped", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve did not exit cleanly after SIGTERM: %v", err)
	}
}

func TestDemoOnce(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, nil, "demo", "--once", "--base-port", "0", "--nodes", "3", "--data-dir", dir)
	if r.code != 0 {
		t.Fatalf("demo: %+v", r)
	}
	dids := regexp.MustCompile(`DID:\s+(did:web:127\.0\.0\.1%3A\d+)`).FindAllStringSubmatch(r.stdout, -1)
	if len(dids) != 3 || dids[0][1] == dids[1][1] || dids[1][1] == dids[2][1] {
		t.Fatalf("want 3 distinct DIDs:\n%s", r.stdout)
	}
	for _, want := range []string{"Ministry of Digital Affairs", "National Statistics Agency", "City of Lyon",
		"Each node resolved the others' DID documents over HTTPS.", "Ready in",
		`Conference "Inter-ministry coordination" (c-`, "every other institution invited and accepted",
		"/app/conference/c-"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, slug := range []string{"ministry", "agency", "city"} {
		if _, err := os.Stat(filepath.Join(dir, slug, "keys.json")); err != nil {
			t.Errorf("node %s has no key file of its own: %v", slug, err)
		}
	}
}
