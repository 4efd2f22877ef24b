package accounts

import (
	"context"
	"errors"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// A session made by an OpenID Connect sign-in is asked about again at the
// provider every oidc.recheck_interval (spec/client-api.md §3.1): its
// userinfo endpoint, with the session's access token (refreshed when it has
// expired), must still answer for the same subject. A provider that refuses
// (the account disabled or removed, the grant revoked) ends the session; a
// provider that cannot be reached does not, so that its outage does not
// sign everyone out.

// keepCheck stores the provider's tokens of a new session.
func (o *OIDC) keepCheck(ctx context.Context, ss store.Session, subject string, tok *oauth2.Token) error {
	if o.cfg.RecheckInterval <= 0 {
		return nil
	}
	return o.store.PutSessionCheck(ctx, store.SessionCheck{
		Hash: ss.Hash, Subject: subject, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
		TokenExpires: tok.Expiry, CheckedAt: o.now().UTC(),
	})
}

// Recheck asks the provider about ss when its last check is older than
// oidc.recheck_interval. It returns a 401 error, having ended the session,
// when the provider no longer accepts the account.
func (o *OIDC) Recheck(ctx context.Context, ss store.Session) error {
	if o == nil || o.cfg.RecheckInterval <= 0 {
		return nil
	}
	c, err := o.store.GetSessionCheck(ctx, ss.Hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil // a session made before re-checks, or otherwise
	} else if err != nil {
		return err
	}
	now := o.now()
	if now.Sub(c.CheckedAt) < o.cfg.RecheckInterval {
		return nil
	}
	refused, err := o.askProvider(ctx, &c)
	if err != nil {
		o.log.Warn("OpenID session not checked again: the provider could not be asked", "user", ss.UserID, "err", err)
		return nil
	}
	if refused != "" {
		o.log.Info("OpenID session ended: the provider no longer accepts the account", "user", ss.UserID, "reason", refused)
		if err := o.store.DeleteSession(ctx, ss.Hash); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return httpapi.Unauthorized("sign in: your organisation's sign-in service no longer accepts your account")
	}
	c.CheckedAt = now.UTC()
	return o.store.PutSessionCheck(ctx, c)
}

// askProvider refreshes c's access token when it has expired and asks the
// userinfo endpoint with it. It returns why the provider refused, or "" when
// it accepted; err is a failure to ask.
func (o *OIDC) askProvider(ctx context.Context, c *store.SessionCheck) (refused string, err error) {
	p, err := o.discover(ctx)
	if err != nil {
		return "", err
	}
	tok := &oauth2.Token{AccessToken: c.AccessToken, RefreshToken: c.RefreshToken, Expiry: c.TokenExpires, TokenType: "Bearer"}
	if !c.TokenExpires.IsZero() && !o.now().Before(c.TokenExpires.Add(-10*time.Second)) {
		if c.RefreshToken == "" {
			return "the access token expired and the provider gave no refresh token", nil
		}
		fresh, err := o.oauth2Config(p).TokenSource(o.ctx(ctx), tok).Token()
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.ErrorCode != "" {
			return "refresh: " + re.ErrorCode, nil
		} else if err != nil {
			return "", err
		}
		tok = fresh
		c.AccessToken, c.TokenExpires = fresh.AccessToken, fresh.Expiry
		if fresh.RefreshToken != "" {
			c.RefreshToken = fresh.RefreshToken
		}
	}
	info, err := p.UserInfo(o.ctx(ctx), oauth2.StaticTokenSource(tok))
	if err != nil {
		// go-oidc reports a refusal as "<status>: <body>".
		if s := err.Error(); strings.HasPrefix(s, "401 ") || strings.HasPrefix(s, "403 ") {
			return "userinfo: " + s[:3], nil
		}
		return "", err
	}
	if info.Subject != c.Subject {
		return "userinfo is about another subject", nil
	}
	return "", nil
}
