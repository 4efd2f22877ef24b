package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestMain lets tests run this very binary as a subprocess (for signals):
// with ENTENTE_TEST_RUN_MAIN=1 the test binary behaves as `entente`.
func TestMain(m *testing.M) {
	if os.Getenv("ENTENTE_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, environ []string, args ...string) result {
	t.Helper()
	var out, errb syncBuffer
	code := run(context.Background(), args, &out, &errb, environ)
	return result{code, out.String(), errb.String()}
}

// syncBuffer collects a command's output. Nodes log from their own
// goroutines, and a child process's output is copied in by another, so
// writes must not interleave (os.Stderr, in production, is safe already).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestHelpEverywhere(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"serve", "--help"}, {"demo", "--help"}, {"keys", "--help"},
		{"keys", "rotate", "--help"}, {"keys", "list", "--help"}, {"keys", "generate", "--help"},
		{"config", "--help"}, {"config", "check", "--help"}, {"version", "--help"}, {"healthcheck", "--help"},
		{"bridge", "--help"}, {"bridge", "generate-registration", "--help"},
		{"peers", "--help"}, {"conf", "audit", "--help"}, {"bench", "federation", "--help"},
		{"help", "serve"},
	} {
		r := runCLI(t, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: code %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestUsageErrorsExitTwoWithOneLine(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"keys", "frobnicate"}, `unknown command "frobnicate" for "entente keys"`},
		{[]string{"demo", "--nodes", "1"}, "--nodes must be between 2 and 16"},
		{[]string{"demo", "--nodes", "many"}, `invalid argument "many" for "--nodes"`},
		{[]string{"version", "extra"}, "takes no arguments"},
	}
	for _, tc := range cases {
		r := runCLI(t, nil, tc.args...)
		if r.code != 2 {
			t.Errorf("%v: exit code %d, want 2 (stderr %q)", tc.args, r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: stderr %q does not contain %q", tc.args, r.stderr, tc.want)
		}
		if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
			t.Errorf("%v: stderr has %d extra lines: %q", tc.args, n, r.stderr)
		}
	}
}

func TestInvalidConfigExitsTwoNamingTheField(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "entente.yaml")
	os.WriteFile(cfg, []byte("node:\n  name: A\n  public_url: https://a.example\n  colour: blue\n"), 0o600)
	r := runCLI(t, nil, "serve", "--config", cfg)
	if r.code != 2 || !strings.Contains(r.stderr, "node.colour: unknown setting (line 4)") {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, []string{"ENTENTE_NODE_NAME=A", "ENTENTE_NODE_PUBLIC_URL=ftp://a"}, "config", "check")
	if r.code != 2 || !strings.Contains(r.stderr, "invalid configuration: node.public_url:") {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, []string{"ENTENTE_NODE_NAME=A", "ENTENTE_NODE_PUBLIC_URL=https://a.example:8443"}, "config", "check")
	if r.code != 0 || r.stdout != "configuration valid: A (did:web:a.example%3A8443)\n" {
		t.Fatalf("code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "entente dev") {
		t.Fatalf("%+v", r)
	}
}

func TestConfigReferenceMatchesCode(t *testing.T) {
	r := runCLI(t, nil, "config", "reference")
	if r.code != 0 || !strings.Contains(r.stdout, "| `node.public_url` | `ENTENTE_NODE_PUBLIC_URL` |") {
		t.Fatalf("%+v", r)
	}
}
