package bridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRegistrationFile(t *testing.T) {
	reg, err := NewRegistration(RegistrationOptions{
		URL: "http://127.0.0.1:29333", HomeserverDomain: "matrix.ministry.example", BotLocalpart: "entente", GhostPrefix: "entente_",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.AppToken) != 64 || len(reg.ServerToken) != 64 || reg.AppToken == reg.ServerToken {
		t.Fatalf("tokens %q and %q: want two different 32-byte hex tokens", reg.AppToken, reg.ServerToken)
	}
	path := filepath.Join(t.TempDir(), "registration.yaml")
	if err := WriteRegistration(path, reg, false); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("registration mode %v, want 0600", info.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `id: entente
url: http://127.0.0.1:29333
as_token: ` + reg.AppToken + `
hs_token: ` + reg.ServerToken + `
sender_localpart: entente
rate_limited: false
namespaces:
    users:
        - regex: ^@entente_.+:matrix\.ministry\.example$
          exclusive: true
        - regex: ^@entente:matrix\.ministry\.example$
          exclusive: true
`
	if string(data) != want {
		t.Errorf("registration file:\n%s\nwant:\n%s", data, want)
	}
	loaded, err := LoadRegistration(path)
	if err != nil || loaded.AppToken != reg.AppToken || loaded.ServerToken != reg.ServerToken {
		t.Fatalf("LoadRegistration = %+v, %v", loaded, err)
	}

	// A second registration would lock the homeserver out: refused unless
	// forced, and the forced file is private again.
	other, err := NewRegistration(RegistrationOptions{URL: "http://127.0.0.1:29333", HomeserverDomain: "matrix.ministry.example", BotLocalpart: "entente"})
	if err != nil {
		t.Fatal(err)
	}
	err = WriteRegistration(path, other, false)
	if err == nil || !strings.Contains(err.Error(), "already exists; pass --force") {
		t.Fatalf("overwriting without force: err = %v", err)
	}
	if kept, _ := LoadRegistration(path); kept.AppToken != reg.AppToken {
		t.Error("refused overwrite changed the file")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteRegistration(path, other, true); err != nil {
		t.Fatal(err)
	}
	if forced, _ := LoadRegistration(path); forced.AppToken != other.AppToken {
		t.Error("forced overwrite kept the old tokens")
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("forced registration mode %v, want 0600", info.Mode().Perm())
	}

	for _, bad := range []RegistrationOptions{
		{HomeserverDomain: "m.example", BotLocalpart: "entente"},
		{URL: "http://127.0.0.1:1", BotLocalpart: "entente"},
		{URL: "http://127.0.0.1:1", HomeserverDomain: "m.example"},
	} {
		if _, err := NewRegistration(bad); err == nil {
			t.Errorf("NewRegistration(%+v) succeeded", bad)
		}
	}
}
