package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/entente-org/entente/bridge"
)

func TestBridgeGenerateRegistration(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "registration.yaml")
	env := []string{
		"ENTENTE_NODE_NAME=Ministry of Digital Affairs",
		"ENTENTE_NODE_PUBLIC_URL=https://visio.ministry.example",
		"ENTENTE_BRIDGE_HOMESERVER_DOMAIN=matrix.ministry.example",
		"ENTENTE_BRIDGE_REGISTRATION=" + reg,
	}
	r := runCLI(t, env, "bridge", "generate-registration")
	if r.code != 0 {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
	got, err := bridge.LoadRegistration(reg)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != "http://127.0.0.1:29333" || got.SenderLocalpart != "entente" || got.RateLimited == nil || *got.RateLimited ||
		len(got.Namespaces.UserIDs) != 2 || got.Namespaces.UserIDs[0].Regex != `^@entente_.+:matrix\.ministry\.example$` {
		t.Errorf("registration = %+v", got)
	}
	if info, err := os.Stat(reg); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("registration file mode: %v, %v; want 0600", info, err)
	}

	r = runCLI(t, env, "bridge", "generate-registration")
	if r.code != 1 || !strings.Contains(r.stderr, "already exists; pass --force") {
		t.Errorf("second run without --force: code %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, env, "bridge", "generate-registration", "--force", "--url", "http://bridge.ministry.example:29333")
	if again, _ := bridge.LoadRegistration(reg); r.code != 0 || again.AppToken == got.AppToken || again.URL != "http://bridge.ministry.example:29333" {
		t.Errorf("--force: code %d, stderr %q; want new tokens and the given URL", r.code, r.stderr)
	}

	r = runCLI(t, env[:2], "bridge", "generate-registration", "--output", filepath.Join(dir, "other.yaml"))
	if r.code != 2 || !strings.Contains(r.stderr, "bridge.homeserver_domain is not set") {
		t.Errorf("without a homeserver domain: code %d, stderr %q", r.code, r.stderr)
	}
}
