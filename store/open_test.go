package store_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
)

// closedLoopbackPort returns a loopback address nothing listens on.
func closedLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return addr
}

func TestOpenRefusesBadDatabaseURLs(t *testing.T) {
	const password = "s3cr%3Ft-pw"
	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{"mysql scheme", "mysql://entente:" + password + "@db.example/entente", `must start with postgres:// or postgresql://, got scheme "mysql"`},
		{"sqlite scheme", "sqlite:///var/lib/entente.db", `got scheme "sqlite"`},
		{"no scheme", "db.example/entente", `got scheme ""`},
		{"bad port", "postgres://entente:" + password + "@db.example:port/entente", "not a valid URL"},
		{"opaque", "postgres:entente:" + password + "@db.example", "must be of the form postgres://host/database"},
		{"bad sslmode", "postgres://entente:" + password + "@127.0.0.1/entente?sslmode=sometimes", "sslmode"},
		{"unreachable", "postgresql://entente:" + password + "@" + closedLoopbackPort(t) + "/entente?connect_timeout=5", "connect to 127.0.0.1 as entente"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			s, err := store.Open(ctx, store.Options{DatabaseURL: tt.url, SQLitePath: filepath.Join(t.TempDir(), "unused.db")})
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded", tt.url)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("Open: err = %q, want it to contain %q", msg, tt.wantErr)
			}
			for _, secret := range []string{password, "s3cr?t-pw", "s3cr"} {
				if strings.Contains(msg, secret) {
					t.Errorf("Open: err = %q reveals the password", msg)
				}
			}
		})
	}
}

func TestOpenWithoutLocation(t *testing.T) {
	_, err := store.Open(t.Context(), store.Options{})
	if err == nil || !strings.Contains(err.Error(), "neither DatabaseURL nor SQLitePath is set") {
		t.Fatalf("Open with empty options: err = %v, want it to name both fields", err)
	}
}

func TestOpenSelectsSQLite(t *testing.T) {
	// A path with URI metacharacters must still name a plain file.
	path := filepath.Join(t.TempDir(), "odd ?#%name.db")
	s, err := store.Open(t.Context(), store.Options{SQLitePath: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	if got := s.Backend(); got != store.BackendSQLite {
		t.Errorf("Backend() = %q, want %q", got, store.BackendSQLite)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file not created at %q: %v", path, err)
	}
	if _, err := s.GetSecret(t.Context(), "none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSecret: err = %v, want ErrNotFound", err)
	}
}
