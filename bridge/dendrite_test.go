package bridge

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/dendritetest"
)

const testServerName = dendritetest.ServerName

// homeserver is the real Dendrite the bridge tests run against.
type homeserver = dendritetest.Homeserver

func startHomeserver(t *testing.T, registration string) *homeserver {
	t.Helper()
	return dendritetest.Start(t, registration)
}

func freeAddr(t *testing.T) string { return dendritetest.FreeAddr(t) }

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
