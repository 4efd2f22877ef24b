package config

import (
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Auth configures how users sign in, whichever way.
type Auth struct {
	Passwords       bool          `yaml:"passwords" default:"true" doc:"Let local users sign in with a password (POST /api/v1/login). Turn off where everyone signs in through OpenID Connect; API tokens keep working for automation."`
	SessionLifetime time.Duration `yaml:"session_lifetime" default:"12h" doc:"How long a browser session made by an OpenID Connect sign-in lasts, between 5m and 720h. The user signs in again at the provider after it."`
}

// OIDC configures sign-in through an OpenID Connect provider (Keycloak,
// ProConnect…). It is off while issuer is empty.
type OIDC struct {
	Issuer               string        `yaml:"issuer" doc:"Issuer URL of the OpenID provider, exactly as its discovery document states it (https://…). Only ID tokens from this issuer are accepted. Empty: OpenID Connect sign-in is off."`
	ProviderName         string        `yaml:"provider_name" default:"OpenID Connect" doc:"Name of the provider on the sign-in button: \"Sign in with <provider_name>\"."`
	ClientID             string        `yaml:"client_id" doc:"Client ID this node is registered under at the provider. Required with issuer. The redirect URI to register is public_url + /auth/oidc/callback, the post-logout redirect URI public_url + /."`
	ClientSecret         string        `yaml:"client_secret" doc:"Client secret. Prefer client_secret_file. One of the two is required with issuer."`
	ClientSecretFile     string        `yaml:"client_secret_file" doc:"File holding the client secret (surrounding white space is ignored)."`
	CAFile               string        `yaml:"ca_file" doc:"Extra PEM CA certificates trusted for the provider's TLS, in addition to the system roots."`
	Scopes               string        `yaml:"scopes" default:"openid,email,profile" doc:"Comma-separated scopes requested; must include openid. ProConnect: openid,email,given_name,usual_name,siret,uid."`
	ClaimUserID          string        `yaml:"claim_user_id" default:"sub" doc:"Claim whose value, lower-cased with characters outside a-z 0-9 . _ - turned into -, names the local user at first sign-in. The account stays linked to the provider's issuer and sub afterwards."`
	ClaimDisplayName     string        `yaml:"claim_display_name" default:"given_name,usual_name" doc:"Comma-separated claims joined with spaces into the display name (ProConnect: given_name,usual_name; Keycloak: given_name,family_name). When all are empty, the name claim is used, then the user name."`
	ClaimEmail           string        `yaml:"claim_email" default:"email" doc:"Claim holding the e-mail address, checked against allowed_email_domains."`
	ClaimUnit            string        `yaml:"claim_unit" doc:"Claim holding the user's organisational unit (a directorate, a service), shown to every organisation beside the node's name. Empty: no unit."`
	ClaimOrganisation    string        `yaml:"claim_organisation" doc:"Claim holding an organisation identifier, such as ProConnect's siret, checked against allowed_organisations."`
	ClaimGroups          string        `yaml:"claim_groups" default:"groups" doc:"Claim holding the user's groups (a list of strings), checked against allowed_groups and admin_groups."`
	AllowedEmailDomains  string        `yaml:"allowed_email_domains" doc:"Comma-separated e-mail domains allowed to sign in (exact match, case-insensitive). Empty: any."`
	AllowedOrganisations string        `yaml:"allowed_organisations" doc:"Comma-separated values of claim_organisation allowed to sign in. Empty: any."`
	AllowedGroups        string        `yaml:"allowed_groups" doc:"Comma-separated groups; a user must be in one of them to sign in. Empty: any."`
	AdminGroups          string        `yaml:"admin_groups" doc:"Comma-separated groups whose members are administrators of this node."`
	AdminClaim           string        `yaml:"admin_claim" doc:"Claim that makes its holder an administrator when it is true. With admin_groups or admin_claim set, administrator rights follow the provider at every sign-in; without them they are set with \"entente users add --admin\"."`
	ClockSkew            time.Duration `yaml:"clock_skew" default:"30s" doc:"Difference tolerated between this node's clock and the provider's when checking ID tokens, at most 5m."`
	RecheckInterval      time.Duration `yaml:"recheck_interval" default:"5m" doc:"How often an open session is checked again at the provider (its userinfo endpoint, the access token refreshed when needed), between 1s and 1h; a session the provider no longer accepts ends at its next request. 0: sessions are not checked again."`
}

// Enabled tells whether OpenID Connect sign-in is configured.
func (o OIDC) Enabled() bool { return o.Issuer != "" }

// ScopeList is oidc.scopes as a list.
func (o OIDC) ScopeList() []string { return splitList(o.Scopes) }

// DisplayNameClaims is oidc.claim_display_name as a list.
func (o OIDC) DisplayNameClaims() []string { return splitList(o.ClaimDisplayName) }

// EmailDomains is oidc.allowed_email_domains as a list.
func (o OIDC) EmailDomains() []string { return splitList(strings.ToLower(o.AllowedEmailDomains)) }

// Organisations is oidc.allowed_organisations as a list.
func (o OIDC) Organisations() []string { return splitList(o.AllowedOrganisations) }

// Groups is oidc.allowed_groups as a list.
func (o OIDC) Groups() []string { return splitList(o.AllowedGroups) }

// AdminGroupList is oidc.admin_groups as a list.
func (o OIDC) AdminGroupList() []string { return splitList(o.AdminGroups) }

// Secret returns the client secret, from client_secret_file when set.
func (o OIDC) Secret() (string, error) {
	if o.ClientSecretFile == "" {
		return o.ClientSecret, nil
	}
	b, err := os.ReadFile(o.ClientSecretFile)
	if err != nil {
		return "", fieldErr("oidc.client_secret_file", "%v", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fieldErr("oidc.client_secret_file", "%s is empty", o.ClientSecretFile)
	}
	return s, nil
}

func (c *Config) validateSignIn() error {
	if c.Auth.SessionLifetime < 5*time.Minute || c.Auth.SessionLifetime > 720*time.Hour {
		return fieldErr("auth.session_lifetime", "must be between 5m and 720h, got %s", c.Auth.SessionLifetime)
	}
	o := c.OIDC
	if !o.Enabled() {
		if !c.Auth.Passwords {
			// Tokens still work, but no browser could sign in: say so
			// rather than start a node nobody can use.
			return fieldErr("auth.passwords", "cannot be off while oidc.issuer is empty: no one could sign in")
		}
		return nil
	}
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fieldErr("oidc.issuer", "must be an https URL without query or fragment, got %q", o.Issuer)
	}
	// OpenID Connect Discovery 1.0 §3: the issuer is an https URL. Plain
	// http is let through only for a provider on this machine.
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return fieldErr("oidc.issuer", "must be an https URL, got %q", o.Issuer)
	}
	if strings.TrimSpace(o.ProviderName) == "" || len(o.ProviderName) > 60 {
		return fieldErr("oidc.provider_name", "must be 1 to 60 bytes")
	}
	if o.ClientID == "" {
		return fieldErr("oidc.client_id", "required with oidc.issuer")
	}
	if (o.ClientSecret == "") == (o.ClientSecretFile == "") {
		return fieldErr("oidc.client_secret", "set exactly one of client_secret and client_secret_file")
	}
	if o.ClientSecretFile != "" {
		if _, err := o.Secret(); err != nil {
			return err
		}
	}
	scopes := o.ScopeList()
	hasOpenID := false
	for _, s := range scopes {
		if s == "openid" {
			hasOpenID = true
		}
		if strings.ContainsAny(s, " \t\"") {
			return fieldErr("oidc.scopes", "%q is not a scope", s)
		}
	}
	if !hasOpenID {
		return fieldErr("oidc.scopes", "must include openid, got %q", o.Scopes)
	}
	if strings.TrimSpace(o.ClaimUserID) == "" {
		return fieldErr("oidc.claim_user_id", "required with oidc.issuer")
	}
	if len(o.DisplayNameClaims()) == 0 {
		return fieldErr("oidc.claim_display_name", "name at least one claim")
	}
	if len(o.EmailDomains()) > 0 && o.ClaimEmail == "" {
		return fieldErr("oidc.claim_email", "required with allowed_email_domains")
	}
	for _, d := range o.EmailDomains() {
		if strings.ContainsAny(d, "@/ ") || !strings.Contains(d, ".") {
			return fieldErr("oidc.allowed_email_domains", "%q is not a domain name", d)
		}
	}
	if len(o.Organisations()) > 0 && o.ClaimOrganisation == "" {
		return fieldErr("oidc.claim_organisation", "required with allowed_organisations")
	}
	if (len(o.Groups()) > 0 || len(o.AdminGroupList()) > 0) && o.ClaimGroups == "" {
		return fieldErr("oidc.claim_groups", "required with allowed_groups or admin_groups")
	}
	if o.RecheckInterval != 0 && (o.RecheckInterval < time.Second || o.RecheckInterval > time.Hour) {
		return fieldErr("oidc.recheck_interval", "must be 0 (off) or between 1s and 1h, got %s", o.RecheckInterval)
	}
	if o.ClockSkew < 0 || o.ClockSkew > 5*time.Minute {
		return fieldErr("oidc.clock_skew", "must be between 0s and 5m, got %s", o.ClockSkew)
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
