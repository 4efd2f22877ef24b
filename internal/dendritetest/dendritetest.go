// Package dendritetest runs a real Dendrite homeserver on loopback for tests:
// the Matrix peer the bridge is tested against. Dendrite is built by
// scripts/install-dendrite from its own tools module; without it a test is
// skipped, or fails when CI=true.
package dendritetest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
)

// BinEnv names the directory holding dendrite, generate-keys,
// generate-config and create-account, as scripts/install-dendrite builds
// them.
const BinEnv = "ENTENTE_DENDRITE_BIN"

// ServerName is the homeserver's server name: Matrix IDs end in ":localhost".
const ServerName = "localhost"

// Option changes the homeserver's configuration.
type Option func(patches map[string]string)

// OpenIDTokenLifetime makes the OpenID tokens the homeserver issues expire
// after d (an hour by default), so that tests can use an expired one.
func OpenIDTokenLifetime(d time.Duration) Option {
	return func(p map[string]string) {
		p["  openid_token_lifetime_ms: 3600000\n"] = fmt.Sprintf("  openid_token_lifetime_ms: %d\n", d.Milliseconds())
	}
}

// Homeserver is a real Dendrite on loopback, in the test's own directory.
type Homeserver struct {
	t       testing.TB
	bin     string
	dir     string
	addr    string
	URL     string
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
}

// dendriteBin finds the Dendrite build, or skips the test (fails it in CI).
func dendriteBin(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(BinEnv)
	if dir == "" {
		// The default place scripts/install-dendrite builds into, from a
		// package directory of the repository.
		dir = repoTools()
	}
	for _, name := range []string{"dendrite", "generate-keys", "generate-config"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			msg := "Dendrite is not built (" + err.Error() + "); run scripts/install-dendrite and set " + BinEnv
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// Start configures and starts Dendrite with the appservice registration at
// registration, and waits until it answers. It stops when the test ends.
func Start(t testing.TB, registration string, opts ...Option) *Homeserver {
	t.Helper()
	hs := &Homeserver{t: t, bin: dendriteBin(t), dir: t.TempDir(), addr: FreeAddr(t)}
	hs.URL = "http://" + hs.addr
	if err := os.Mkdir(filepath.Join(hs.dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	hs.tool("generate-keys", "--private-key", "matrix_key.pem")
	conf := hs.tool("generate-config", "-ci", "-dir", "./data", "-server", ServerName)
	patches := map[string]string{
		"  config_files: []\n": "  config_files: [" + registration + "]\n",
		"  level: trace\n":     "  level: warn\n",
	}
	for _, o := range opts {
		o(patches)
	}
	conf = patchConfig(t, conf, patches)
	if err := os.WriteFile(filepath.Join(hs.dir, "dendrite.yaml"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(hs.dir, "dendrite.log"))
	if err != nil {
		t.Fatal(err)
	}
	hs.logFile = log
	hs.Start()
	t.Cleanup(func() {
		hs.Stop()
		_ = log.Close()
		if t.Failed() {
			if out, err := os.ReadFile(log.Name()); err == nil {
				t.Logf("dendrite output (last 4 KiB):\n%s", tail(out, 4096))
			}
		}
	})
	return hs
}

func (hs *Homeserver) tool(name string, args ...string) []byte {
	hs.t.Helper()
	cmd := exec.CommandContext(hs.t.Context(), filepath.Join(hs.bin, name), args...)
	cmd.Dir = hs.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		hs.t.Fatalf("%s: %v\n%s", name, err, stderr.String())
	}
	return out
}

// Start runs Dendrite again after Stop, on the same address, and waits for
// its client API.
func (hs *Homeserver) Start() {
	hs.t.Helper()
	cmd := exec.Command(filepath.Join(hs.bin, "dendrite"),
		"--really-enable-open-registration", "--config", "dendrite.yaml",
		"--http-bind-address", hs.addr, "--https-bind-address", FreeAddr(hs.t))
	cmd.Dir = hs.dir
	cmd.Stdout, cmd.Stderr = hs.logFile, hs.logFile
	if err := cmd.Start(); err != nil {
		hs.t.Fatalf("start dendrite: %v", err)
	}
	hs.cmd = cmd
	hs.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(hs.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-hs.exited:
			hs.t.Fatal("dendrite exited while starting; see its output")
		default:
		}
		resp, err := http.Get(hs.URL + "/_matrix/client/versions")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			hs.t.Fatalf("dendrite did not answer on %s within 60s: %v", hs.URL, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends Dendrite (SIGTERM, then SIGKILL after 10s) and waits for it.
func (hs *Homeserver) Stop() {
	if hs.cmd == nil {
		return
	}
	_ = hs.cmd.Process.Signal(os.Interrupt)
	select {
	case <-hs.exited:
	case <-time.After(10 * time.Second):
		_ = hs.cmd.Process.Kill()
		<-hs.exited
	}
	hs.cmd = nil
}

// User registers a Matrix user through open registration and returns a
// client logged in as them.
func (hs *Homeserver) User(ctx context.Context, localpart string) *mautrix.Client {
	hs.t.Helper()
	cli, err := mautrix.NewClient(hs.URL, "", "")
	if err != nil {
		hs.t.Fatal(err)
	}
	resp, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: localpart, Password: "correct horse battery staple"})
	if err != nil {
		hs.t.Fatalf("register %s: %v", localpart, err)
	}
	cli.UserID, cli.AccessToken, cli.DeviceID = resp.UserID, resp.AccessToken, resp.DeviceID
	return cli
}

func patchConfig(t testing.TB, conf []byte, replace map[string]string) []byte {
	t.Helper()
	s := string(conf)
	for old, repl := range replace {
		if !strings.Contains(s, old) {
			t.Fatalf("dendrite config has no %q to patch; generate-config changed", old)
		}
		s = strings.Replace(s, old, repl, 1)
	}
	return []byte(s)
}

// FreeAddr returns a loopback address with a port nothing listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// repoTools finds .tools/bin at the root of the repository holding the
// current directory.
func repoTools() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, ".tools", "bin")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, ".tools", "bin")
		}
	}
}
