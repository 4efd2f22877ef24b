package accounts_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/hydratest"
	"github.com/entente-org/entente/internal/nodetest"
)

// TestOIDCSessionRecheck: an open session is asked about again at the
// provider every oidc.recheck_interval; while the provider accepts the
// account it goes on, and once the provider has disabled it and revoked its
// grants, the session ends at its next request.
func TestOIDCSessionRecheck(t *testing.T) {
	f := nodetest.New(t)
	p := hydratest.Start(t, f.CA)
	n := oidcNode(t, f, p, "Ministry of Finance", func(c *config.Config) { c.OIDC.RecheckInterval = time.Second })
	p.SetUser("sub-alice", alice)
	p.LoginAs("sub-alice")
	b := newBrowser(t, f)
	if got := b.signIn(n); got != "/" {
		t.Fatalf("sign-in ends at %q", got)
	}
	ctx := context.Background()
	hash := hashOf(b.sessionCookie(n))
	first, err := n.Store().GetSessionCheck(ctx, hash)
	if err != nil || first.Subject != "sub-alice" || first.AccessToken == "" {
		t.Fatalf("session check %+v, %v", first, err)
	}

	// The provider still accepts the account: the check passes and is
	// recorded.
	nodetest.Eventually(t, 30*time.Second, "a passed re-check", func() bool {
		if code, body := b.api(n, "GET", "/me", "", nil, nil); code != 200 {
			t.Fatalf("/me while the provider accepts the account: %d %s", code, body)
		}
		c, err := n.Store().GetSessionCheck(ctx, hash)
		return err == nil && c.CheckedAt.After(first.CheckedAt)
	})

	// The provider disables the account and revokes its tokens.
	p.Disable("sub-alice")
	p.RevokeGrants(t, "sub-alice")
	var code int
	var body string
	nodetest.Eventually(t, 30*time.Second, "the session to end", func() bool {
		code, body = b.api(n, "GET", "/me", "", nil, nil)
		return code != 200
	})
	if code != 401 || !strings.Contains(body, `"message":"sign in: your organisation's sign-in service no longer accepts your account"`) {
		t.Fatalf("/me after the provider disabled the account: %d %s", code, body)
	}
	if code, body := b.api(n, "GET", "/me", "", nil, nil); code != 401 || !strings.Contains(body, "sign in: the session has ended") {
		t.Fatalf("/me afterwards: %d %s", code, body)
	}
	if _, err := n.Store().GetSession(ctx, hash); err == nil {
		t.Fatal("the session is still stored")
	}
}
