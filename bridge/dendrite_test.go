package bridge

import (
	"bytes"
	"context"
	"errors"
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

// DendriteBinEnv names the directory holding dendrite, generate-keys,
// generate-config and create-account, as scripts/install-dendrite builds
// them.
const DendriteBinEnv = "ENTENTE_DENDRITE_BIN"

const testServerName = "localhost"

// homeserver is a real Dendrite on loopback, in the test's own directory.
type homeserver struct {
	t       *testing.T
	bin     string
	dir     string
	addr    string
	URL     string
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
}

// dendriteBin finds the Dendrite build, or skips the test (fails it in CI).
func dendriteBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(DendriteBinEnv)
	if dir == "" {
		// The default place scripts/install-dendrite builds into.
		dir = filepath.Join("..", ".tools", "bin")
	}
	for _, name := range []string{"dendrite", "generate-keys", "generate-config"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			msg := "Dendrite is not built (" + err.Error() + "); run scripts/install-dendrite and set " + DendriteBinEnv
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

// startHomeserver configures and starts Dendrite with the appservice
// registration at registration, and waits until it answers.
func startHomeserver(t *testing.T, registration string) *homeserver {
	t.Helper()
	hs := &homeserver{t: t, bin: dendriteBin(t), dir: t.TempDir(), addr: freeAddr(t)}
	hs.URL = "http://" + hs.addr
	if err := os.Mkdir(filepath.Join(hs.dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	hs.tool("generate-keys", "--private-key", "matrix_key.pem")
	conf := hs.tool("generate-config", "-ci", "-dir", "./data", "-server", testServerName)
	conf = patchConfig(t, conf, map[string]string{
		"  config_files: []\n": "  config_files: [" + registration + "]\n",
		"  level: trace\n":     "  level: warn\n",
	})
	if err := os.WriteFile(filepath.Join(hs.dir, "dendrite.yaml"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(hs.dir, "dendrite.log"))
	if err != nil {
		t.Fatal(err)
	}
	hs.logFile = log
	hs.start()
	t.Cleanup(func() {
		hs.stop()
		_ = log.Close()
		if t.Failed() {
			if out, err := os.ReadFile(log.Name()); err == nil {
				t.Logf("dendrite output (last 4 KiB):\n%s", tail(out, 4096))
			}
		}
	})
	return hs
}

func (hs *homeserver) tool(name string, args ...string) []byte {
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

// start runs Dendrite on hs.addr and waits for its client API.
func (hs *homeserver) start() {
	hs.t.Helper()
	cmd := exec.Command(filepath.Join(hs.bin, "dendrite"),
		"--really-enable-open-registration", "--config", "dendrite.yaml",
		"--http-bind-address", hs.addr, "--https-bind-address", freeAddr(hs.t))
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

// stop ends Dendrite (SIGTERM, then SIGKILL after 10s) and waits for it.
func (hs *homeserver) stop() {
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

// user registers a Matrix user through open registration and returns a
// client logged in as them.
func (hs *homeserver) user(ctx context.Context, localpart string) *mautrix.Client {
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

func patchConfig(t *testing.T, conf []byte, replace map[string]string) []byte {
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

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
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

// waitFor polls cond every 50ms until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := cond()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
