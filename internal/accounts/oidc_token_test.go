package accounts_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/hydratest"
	"github.com/entente-org/entente/internal/nodetest"
)

type jwtClaims struct {
	Nonce string `json:"nonce"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

// claimsOf reads claims of a JWT without checking it.
func claimsOf(t *testing.T, raw string) jwtClaims {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("ID token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c jwtClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// idToken signs in at n and returns the ID token the node received.
func idToken(t *testing.T, f *nodetest.Federation, n *nodetest.Node) string {
	t.Helper()
	b := newBrowser(t, f)
	if got := b.signIn(n); got != "/" {
		t.Fatalf("sign-in ends at %q", got)
	}
	ss, err := n.Store().GetSession(context.Background(), hashOf(b.sessionCookie(n)))
	if err != nil || ss.IDToken == "" {
		t.Fatalf("session %+v, %v", ss, err)
	}
	return ss.IDToken
}

// TestOIDCIDTokenChecks presents real ID tokens the flow would not deliver:
// another issuer's, another client's, expired ones, and one with another
// sign-in's nonce.
func TestOIDCIDTokenChecks(t *testing.T) {
	f := nodetest.New(t)
	// ID tokens that live a minute, so that their expiry comes before the
	// node's own age limit (5 minutes).
	p := hydratest.Start(t, f.CA, hydratest.IDTokenLifetime(time.Minute))
	other := hydratest.Start(t, f.CA)
	n := oidcNode(t, f, p, "Ministry of Finance", nil)
	m := oidcNode(t, f, other, "Other ministry", nil)
	for _, pr := range []*hydratest.Provider{p, other} {
		pr.SetUser("sub-alice", alice)
		pr.LoginAs("sub-alice")
	}
	raw := idToken(t, f, n)
	foreign := idToken(t, f, m)
	c := claimsOf(t, raw)
	nonce := c.Nonce
	iat, exp := time.Unix(c.Iat, 0), time.Unix(c.Exp, 0)
	if exp.Sub(iat) != time.Minute {
		t.Fatalf("ID token lives %s, want 1m", exp.Sub(iat))
	}
	ctx := context.Background()

	verifier := func(edit func(*config.Config), now time.Time) *accounts.OIDC {
		cfg := n.Config
		if edit != nil {
			edit(&cfg)
		}
		o, err := accounts.NewOIDC(cfg, n.Store(), func() time.Time { return now }, nil)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	reason := func(err error) string {
		if se, ok := errors.AsType[*accounts.SignInError](err); ok {
			return se.Reason
		}
		if err == nil {
			return "accepted"
		}
		return "other: " + err.Error()
	}
	now := iat
	skew := n.Config.OIDC.ClockSkew
	for _, tc := range []struct {
		name  string
		o     *accounts.OIDC
		token string
		nonce string
		want  string
	}{
		{"genuine", verifier(nil, now), raw, nonce, "accepted"},
		{"another sign-in's nonce", verifier(nil, now), raw, "some-other-nonce", "nonce"},
		{"another issuer", verifier(nil, now), foreign, claimsOf(t, foreign).Nonce, "token"},
		{"another audience", verifier(func(c *config.Config) { c.OIDC.ClientID = "another-client" }, now), raw, nonce, "token"},
		// Within clock_skew past its expiry the token passes, beyond it not.
		{"expired within the skew", verifier(nil, exp.Add(skew-5*time.Second)), raw, nonce, "accepted"},
		{"expired beyond the skew", verifier(nil, exp.Add(skew+5*time.Second)), raw, nonce, "expired"},
		{"clock behind by less than the skew", verifier(nil, now.Add(-skew+5*time.Second)), raw, nonce, "accepted"},
		{"issued in the future beyond the skew", verifier(nil, now.Add(-skew-5*time.Second)), raw, nonce, "token"},
	} {
		_, err := tc.o.VerifyIDToken(ctx, tc.token, tc.nonce)
		if got := reason(err); got != tc.want {
			t.Errorf("%s: %s (%v), want %s", tc.name, got, err, tc.want)
		}
	}
}
