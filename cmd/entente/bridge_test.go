package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/bridge"
	"github.com/entente-org/entente/internal/dendritetest"
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

// "entente demo --matrix-registration" bridges the first node to a real
// homeserver: the demo conference gets a Matrix room, and the Matrix users
// named by --matrix-invite are invited to it.
func TestDemoBridgesToMatrix(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "registration.yaml")
	listen := dendritetest.FreeAddr(t)
	r := runCLI(t, []string{
		"ENTENTE_NODE_NAME=demo", "ENTENTE_NODE_PUBLIC_URL=https://127.0.0.1:8441",
		"ENTENTE_BRIDGE_HOMESERVER_DOMAIN=" + dendritetest.ServerName,
	}, "bridge", "generate-registration", "--output", reg, "--url", "http://"+listen)
	if r.code != 0 {
		t.Fatalf("generate-registration: %+v", r)
	}
	hs := dendritetest.Start(t, reg)
	mona := hs.User(t.Context(), "mona")

	r = runCLI(t, nil, "demo", "--once", "--base-port", "0", "--data-dir", filepath.Join(dir, "demo"),
		"--matrix-registration", reg, "--matrix-homeserver", hs.URL, "--matrix-domain", dendritetest.ServerName,
		"--matrix-invite", "@mona:localhost", "--matrix-alias", "#demo:localhost")
	if r.code != 0 {
		t.Fatalf("demo: %+v", r)
	}
	m := regexp.MustCompile(`Matrix room: (![A-Za-z0-9]+:localhost), bridged by Ministry of Digital Affairs\.`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("the demo names no Matrix room:\n%s", r.stdout)
	}
	var member event.MemberEventContent
	if err := mona.StateEvent(t.Context(), id.RoomID(m[1]), event.StateMember, mona.UserID.String(), &member); err != nil ||
		member.Membership != event.MembershipInvite {
		t.Fatalf("Mona's membership of %s: %+v, %v; want invite", m[1], member, err)
	}
	// Olga, invited nowhere, joins by the address the demo printed.
	if !strings.Contains(r.stdout, "Any Matrix user of the homeserver joins the room by its address #demo:localhost.") {
		t.Errorf("the demo does not print the room's address:\n%s", r.stdout)
	}
	joined, err := hs.User(t.Context(), "olga").JoinRoom(t.Context(), "#demo:localhost", nil)
	if err != nil || joined.RoomID != id.RoomID(m[1]) {
		t.Fatalf("Olga joins #demo:localhost: %+v, %v; want room %s", joined, err, m[1])
	}

	r = runCLI(t, nil, "demo", "--once", "--base-port", "0", "--matrix-registration", filepath.Join(dir, "missing.yaml"))
	if r.code != 2 || !strings.HasPrefix(r.stderr, "entente: --matrix-registration: ") {
		t.Errorf("demo with a missing registration: %+v", r)
	}
}
