package config

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"regexp"
	"strings"
)

// LiveKit configures the LiveKit-compatible signalling (package livekit,
// spec/client-api.md §8): the API key and secret that sign LiveKit access
// tokens for this node.
type LiveKit struct {
	APIKey        string `yaml:"api_key" doc:"LiveKit API key: the issuer (iss) of the LiveKit access tokens this node accepts at /rtc and mints for its users. Empty: LiveKit clients are not served. \"entente config example\" generates one."`
	APISecret     string `yaml:"api_secret" doc:"LiveKit API secret, at least 32 characters, that signs those tokens (HS256). Prefer api_secret_file. One of the two is required with api_key."`
	APISecretFile string `yaml:"api_secret_file" doc:"File holding the LiveKit API secret (surrounding white space is ignored)."`
}

// minLiveKitSecret is the shortest API secret accepted: HS256 with a
// shorter key is open to guessing.
const minLiveKitSecret = 32

var liveKitKey = regexp.MustCompile(`^[A-Za-z0-9_-]{3,64}$`)

// Enabled reports whether LiveKit clients are served.
func (l LiveKit) Enabled() bool { return l.APIKey != "" }

// Secret returns the API secret, from api_secret_file when set.
func (l LiveKit) Secret() (string, error) {
	s := l.APISecret
	field := "livekit.api_secret"
	if l.APISecretFile != "" {
		field = "livekit.api_secret_file"
		b, err := os.ReadFile(l.APISecretFile)
		if err != nil {
			return "", fieldErr(field, "%v", err)
		}
		s = strings.TrimSpace(string(b))
	}
	if len(s) < minLiveKitSecret {
		return "", fieldErr(field, "must be at least %d characters, got %d", minLiveKitSecret, len(s))
	}
	return s, nil
}

func (l LiveKit) validate() error {
	if !l.Enabled() {
		if l.APISecret != "" || l.APISecretFile != "" {
			return fieldErr("livekit.api_key", "required with api_secret or api_secret_file")
		}
		return nil
	}
	if !liveKitKey.MatchString(l.APIKey) {
		return fieldErr("livekit.api_key", "must be 3 to 64 letters, digits, _ or -, got %q", l.APIKey)
	}
	if (l.APISecret == "") == (l.APISecretFile == "") {
		return fieldErr("livekit.api_secret", "set exactly one of api_secret and api_secret_file")
	}
	_, err := l.Secret()
	return err
}

// NewLiveKitCredentials makes a fresh API key and a 256-bit secret.
func NewLiveKitCredentials() LiveKit {
	var k [9]byte
	var s [32]byte
	_, _ = rand.Read(k[:])
	_, _ = rand.Read(s[:])
	return LiveKit{
		APIKey:    "API" + base64.RawURLEncoding.EncodeToString(k[:]),
		APISecret: base64.RawURLEncoding.EncodeToString(s[:]),
	}
}
