package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/node"
)

// TestUsersAddPasswordStdin sets a password through the CLI, then signs in
// with it against the node's store.
func TestUsersAddPasswordStdin(t *testing.T) {
	_, env := nodeEnv(t)
	for _, tc := range []struct {
		name, stdin string
		code        int
		stderrHas   string
	}{
		{"too short", "short\n", 1, "password of 5 characters: use at least 10"},
		{"empty", "", 1, "standard input holds no password"},
		{"good", "Bonjour-Marianne-2026\r\nignored second line\n", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "users", "add", "dana", "--password-stdin")
			cmd.Env = append(append(os.Environ(), env...), "ENTENTE_TEST_RUN_MAIN=1")
			cmd.Stdin = strings.NewReader(tc.stdin)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := errors.AsType[*exec.ExitError](err); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(stderr.String(), tc.stderrHas) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tc.code, tc.stderrHas)
			}
		})
	}

	cfg, err := config.Load("", env)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := node.OpenStore(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := accounts.Login(ctx, s, "dana", "Bonjour-Marianne-2026", time.Now()); err != nil {
		t.Fatalf("sign in with the password given on stdin: %v", err)
	}
	if _, err := accounts.Login(ctx, s, "dana", "short", time.Now()); !errors.Is(err, accounts.ErrSignIn) {
		t.Fatalf("the refused password works: %v", err)
	}
}
