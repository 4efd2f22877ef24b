package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/devcert"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// A node killed (SIGKILL, no shutdown at all) while messages wait in its
// outbox delivers them after it starts again.
func TestNodeKilledMidOutboxResumes(t *testing.T) {
	f := nodetest.New(t)
	agency := f.Start(t, "Agency", nil)
	bruno, _ := nodetest.User(t, agency, "bruno", "Bruno")

	// The ministry runs as a real process, with a certificate of the test CA.
	dir := t.TempDir()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	certPEM, keyPEM, err := f.CA.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := devcert.WriteFiles(filepath.Join(dir, "tls"), certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"ENTENTE_NODE_NAME=Ministry", "ENTENTE_NODE_PUBLIC_URL=https://" + addr,
		"ENTENTE_NODE_DATA_DIR=" + filepath.Join(dir, "data"), "ENTENTE_HTTP_LISTEN=" + addr,
		"ENTENTE_HTTP_TLS_CERT=" + certFile, "ENTENTE_HTTP_TLS_KEY=" + keyFile,
		"ENTENTE_FEDERATION_CA_FILE=" + f.CAFile, "ENTENTE_FEDERATION_ALLOW_PRIVATE_ADDRESSES=true",
		"ENTENTE_LOG_FORMAT=text",
	}
	ministryDID := "did:web:127.0.0.1%3A" + fmt.Sprint(port)
	ctx := context.Background()
	if err := (federation.TrustList{Store: agency.Store()}).Add(ctx, store.Peer{DID: ministryDID, Name: "Ministry", MayInvite: true, AddedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"users", "add", "alice"},
		{"peers", "add", agency.DID(), "--name", "Agency"},
	} {
		if r := runCLI(t, env, args...); r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	r := runCLI(t, env, "conf", "create", "Survives a crash", "--as", "alice")
	conf := strings.TrimSpace(r.stdout)

	agency.Stop(t) // the peer is down: the invitation waits in the outbox
	if r := runCLI(t, env, "conf", "invite", conf, agency.DID(), "--as", "alice"); r.code != 0 {
		t.Fatalf("invite: %+v", r)
	}
	first := startNodeProcess(t, env)
	time.Sleep(300 * time.Millisecond) // a delivery attempt or two fail
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()

	agency = agency.Restart(t)
	startNodeProcess(t, env)
	nodetest.Eventually(t, 20*time.Second, "the invitation at the agency", func() bool {
		inv, _ := agency.Federation().Invitations(ctx, bruno)
		return len(inv) == 1 && inv[0].Conference == conf
	})
}

// startNodeProcess runs `entente serve` as a subprocess and waits until it
// is ready; it is killed when the test ends.
func startNodeProcess(t *testing.T, env []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = append(append(os.Environ(), env...), "ENTENTE_TEST_RUN_MAIN=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	tail := &logTail{lines: make(chan string, 1024)}
	go tail.read(stderr)
	if _, err := tail.waitFor("node ready", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range tail.lines {
		}
	}()
	return cmd
}
