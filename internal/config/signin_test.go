package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const keycloak = minimal + `
oidc:
  issuer: https://sso.ministry.example/realms/agents
  provider_name: Keycloak
  client_id: entente
  client_secret: s3cret
`

func TestSignInSettings(t *testing.T) {
	c, err := Load(writeFile(t, keycloak+`  claim_display_name: given_name, family_name
  allowed_email_domains: Ministry.example, agency.example
  admin_groups: entente-admins
auth:
  passwords: false
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.OIDC.Enabled() || c.Auth.Passwords || c.OIDC.ProviderName != "Keycloak" {
		t.Fatalf("config %+v", c)
	}
	if got := c.OIDC.DisplayNameClaims(); len(got) != 2 || got[0] != "given_name" || got[1] != "family_name" {
		t.Fatalf("display name claims %q", got)
	}
	if got := c.OIDC.EmailDomains(); len(got) != 2 || got[0] != "ministry.example" || got[1] != "agency.example" {
		t.Fatalf("e-mail domains %q", got)
	}
	if got := c.OIDC.ScopeList(); len(got) != 3 || got[0] != "openid" {
		t.Fatalf("default scopes %q", got)
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(writeFile(t, minimal+`
oidc:
  issuer: https://proconnect.example/api/v2
  client_id: entente
  client_secret_file: `+secretFile+`
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.OIDC.Secret(); err != nil || s != "from-file" {
		t.Fatalf("secret %q, %v", s, err)
	}
}

func TestSignInErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name, file, field string
	}{
		{"passwords off with no provider", minimal + "auth:\n  passwords: false\n", "auth.passwords"},
		{"session lifetime", minimal + "auth:\n  session_lifetime: 1m\n", "auth.session_lifetime"},
		{"http issuer", minimal + "oidc:\n  issuer: http://sso.example\n  client_id: x\n  client_secret: y\n", "oidc.issuer"},
		{"issuer with query", keycloak + "  provider_name: K\n", ""},
		{"no client id", minimal + "oidc:\n  issuer: https://sso.example\n  client_secret: y\n", "oidc.client_id"},
		{"no secret", minimal + "oidc:\n  issuer: https://sso.example\n  client_id: x\n", "oidc.client_secret"},
		{"both secrets", keycloak + "  client_secret_file: /nonexistent\n", "oidc.client_secret"},
		{"missing secret file", minimal + "oidc:\n  issuer: https://sso.example\n  client_id: x\n  client_secret_file: /nonexistent/secret\n", "oidc.client_secret_file"},
		{"no openid scope", keycloak + "  scopes: email,profile\n", "oidc.scopes"},
		{"bad domain", keycloak + "  allowed_email_domains: \"@ministry\"\n", "oidc.allowed_email_domains"},
		{"organisations without claim", keycloak + "  allowed_organisations: \"110002011\"\n", "oidc.claim_organisation"},
		{"groups without claim", keycloak + "  claim_groups: \"\"\n  admin_groups: admins\n", "oidc.claim_groups"},
		{"skew too large", keycloak + "  clock_skew: 10m\n", "oidc.clock_skew"},
		{"empty display name claims", keycloak + "  claim_display_name: \",\"\n", "oidc.claim_display_name"},
	}
	for _, tc := range cases {
		_, err := Load(writeFile(t, tc.file), nil)
		if tc.field == "" {
			// The duplicate key is refused by the YAML layer.
			if err == nil {
				t.Errorf("%s: accepted", tc.name)
			}
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: error %v, want one naming %s", tc.name, err, tc.field)
		}
	}
	// A provider on this machine may be reached over plain http.
	if _, err := Load(writeFile(t, minimal+"oidc:\n  issuer: http://127.0.0.1:4444/\n  client_id: x\n  client_secret: y\n"), nil); err != nil {
		t.Errorf("loopback http issuer: %v", err)
	}
}
