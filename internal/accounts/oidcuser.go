package accounts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/store"
)

// account applies the sign-in rules to verified claims, then creates the
// user at their first sign-in or updates them (display name, e-mail, unit
// and, when the provider decides it, administrator rights).
func (o *OIDC) account(ctx context.Context, c Claims) (store.User, error) {
	email := strings.ToLower(claimString(c.Values, o.cfg.ClaimEmail))
	if err := o.allowed(c, email); err != nil {
		return store.User{}, err
	}
	var u store.User
	err := o.store.InTx(ctx, func(tx store.Tx) error {
		id, err := o.userID(ctx, tx, c)
		if err != nil {
			return err
		}
		now := o.now().UTC()
		u = store.User{ID: id, CreatedAt: now}
		old, err := tx.GetUser(ctx, id)
		switch {
		case err == nil:
			u.CreatedAt, u.Admin = old.CreatedAt, old.Admin
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if o.cfg.AdminClaim != "" || len(o.cfg.AdminGroupList()) > 0 {
			u.Admin = o.isAdmin(c)
		}
		u.DisplayName = o.displayName(c, id)
		u.Unit = clip(claimString(c.Values, o.cfg.ClaimUnit), 100)
		if err := tx.PutUser(ctx, u); err != nil {
			return err
		}
		return tx.PutIdentity(ctx, store.Identity{Issuer: c.Issuer, Subject: c.Subject, UserID: id, Email: email, UpdatedAt: now})
	})
	return u, err
}

// allowed applies allowed_email_domains, allowed_organisations and
// allowed_groups; the issuer was checked with the ID token.
func (o *OIDC) allowed(c Claims, email string) error {
	if domains := o.cfg.EmailDomains(); len(domains) > 0 {
		_, domain, ok := strings.Cut(email, "@")
		if !ok || !slices.Contains(domains, domain) {
			return refuse("not_allowed", "e-mail %q is outside the allowed domains", email)
		}
		// An address the provider has not verified proves nothing.
		if v, ok := c.Values["email_verified"].(bool); ok && !v {
			return refuse("not_allowed", "the provider has not verified e-mail %q", email)
		}
	}
	if orgs := o.cfg.Organisations(); len(orgs) > 0 {
		if org := claimString(c.Values, o.cfg.ClaimOrganisation); !slices.Contains(orgs, org) {
			return refuse("not_allowed", "organisation %q (claim %s) is not allowed", org, o.cfg.ClaimOrganisation)
		}
	}
	if groups := o.cfg.Groups(); len(groups) > 0 {
		if !slices.ContainsFunc(claimStrings(c.Values, o.cfg.ClaimGroups), func(g string) bool { return slices.Contains(groups, g) }) {
			return refuse("not_allowed", "the user is in none of the allowed groups")
		}
	}
	return nil
}

func (o *OIDC) isAdmin(c Claims) bool {
	if o.cfg.AdminClaim != "" {
		switch v := c.Values[o.cfg.AdminClaim].(type) {
		case bool:
			if v {
				return true
			}
		case string:
			if v == "true" {
				return true
			}
		}
	}
	admins := o.cfg.AdminGroupList()
	return slices.ContainsFunc(claimStrings(c.Values, o.cfg.ClaimGroups), func(g string) bool { return slices.Contains(admins, g) })
}

// userID is the local user linked to (issuer, sub), or at the first sign-in
// the name made from claim_user_id.
func (o *OIDC) userID(ctx context.Context, tx store.Tx, c Claims) (string, error) {
	linked, err := tx.GetIdentity(ctx, c.Issuer, c.Subject)
	if err == nil {
		return linked.UserID, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	raw := claimString(c.Values, o.cfg.ClaimUserID)
	id := localpart(raw)
	if !federation.ValidLocalpart(id) || reservedName(id) != "" {
		return "", refuse("not_allowed", "claim %s = %q makes no valid user name", o.cfg.ClaimUserID, raw)
	}
	// A name already linked to another account of the provider is not
	// handed over: that would let one person into another's account.
	if other, err := tx.GetIdentityOfUser(ctx, id); err == nil {
		return "", refuse("not_allowed", "user name %q is already linked to another account (%s)", id, other.Subject)
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	return id, nil
}

func (o *OIDC) displayName(c Claims, id string) string {
	var parts []string
	for _, claim := range o.cfg.DisplayNameClaims() {
		if v := strings.TrimSpace(claimString(c.Values, claim)); v != "" {
			parts = append(parts, v)
		}
	}
	name := strings.Join(parts, " ")
	if name == "" {
		name = strings.TrimSpace(claimString(c.Values, "name"))
	}
	if name == "" {
		name = id
	}
	return clip(name, 100)
}

// localpart lower-cases s and turns every character outside a-z 0-9 . _ -
// into "-", so that "Jean.Dupont@finances.gouv.fr" names
// "jean.dupont-finances.gouv.fr".
func localpart(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// claimString is a claim's value as text: strings as they are, numbers as
// written (ProConnect's siret is a string, some providers send numbers).
func claimString(values map[string]any, claim string) string {
	if claim == "" {
		return ""
	}
	switch v := values[claim].(type) {
	case string:
		return v
	case float64:
		return fmt.Sprintf("%.0f", v)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// claimStrings is a list claim such as groups; a single string counts as a
// list of one.
func claimStrings(values map[string]any, claim string) []string {
	switch v := values[claim].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// clip shortens s to at most n bytes without cutting a character.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "")
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
