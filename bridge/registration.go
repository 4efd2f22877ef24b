package bridge

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"

	"maunium.net/go/mautrix/appservice"
)

// RegistrationOptions describes the appservice to the homeserver.
type RegistrationOptions struct {
	// ID names the appservice on the homeserver; default "entente".
	ID string
	// URL is where the homeserver reaches the appservice listener, e.g.
	// http://127.0.0.1:29333.
	URL              string
	HomeserverDomain string
	BotLocalpart     string
	GhostPrefix      string
}

// NewRegistration returns a registration with fresh random tokens that
// reserves the bot and every ghost on the homeserver exclusively, so that
// nobody else can register a name that would pass for an Entente
// participant.
func NewRegistration(o RegistrationOptions) (*appservice.Registration, error) {
	if o.ID == "" {
		o.ID = "entente"
	}
	if o.GhostPrefix == "" {
		o.GhostPrefix = defaultGhostPrefix
	}
	switch {
	case o.URL == "":
		return nil, errors.New("bridge: registration needs the appservice URL")
	case o.HomeserverDomain == "":
		return nil, errors.New("bridge: registration needs the homeserver domain")
	case o.BotLocalpart == "":
		return nil, errors.New("bridge: registration needs the bot localpart")
	}
	asToken, err := randomToken()
	if err != nil {
		return nil, err
	}
	hsToken, err := randomToken()
	if err != nil {
		return nil, err
	}
	rateLimited := false
	reg := &appservice.Registration{
		ID:              o.ID,
		URL:             o.URL,
		AppToken:        asToken,
		ServerToken:     hsToken,
		SenderLocalpart: o.BotLocalpart,
		RateLimited:     &rateLimited,
	}
	domain := regexp.QuoteMeta(o.HomeserverDomain)
	reg.Namespaces.UserIDs.Register(regexp.MustCompile("^@"+regexp.QuoteMeta(o.GhostPrefix)+".+:"+domain+"$"), true)
	reg.Namespaces.UserIDs.Register(regexp.MustCompile("^@"+regexp.QuoteMeta(o.BotLocalpart)+":"+domain+"$"), true)
	return reg, nil
}

// WriteRegistration writes reg as YAML to path with mode 0600, since it
// holds both tokens. It refuses to replace an existing file unless force is
// set: new tokens would lock the running homeserver out.
func WriteRegistration(path string, reg *appservice.Registration, force bool) error {
	data, err := reg.YAML()
	if err != nil {
		return fmt.Errorf("bridge: encode registration: %w", err)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("bridge: registration %s already exists; pass --force to replace it (the homeserver must then load the new one)", path)
	}
	if err != nil {
		return fmt.Errorf("bridge: write registration: %w", err)
	}
	if force {
		// A replaced file keeps its old mode; the tokens must not be readable.
		if err := f.Chmod(0o600); err != nil {
			_ = f.Close()
			return fmt.Errorf("bridge: write registration %s: %w", path, err)
		}
	}
	if _, err := f.WriteString(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("bridge: write registration %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bridge: write registration %s: %w", path, err)
	}
	return nil
}

// LoadRegistration reads a registration written by WriteRegistration.
func LoadRegistration(path string) (*appservice.Registration, error) {
	reg, err := appservice.LoadRegistration(path)
	if err != nil {
		return nil, fmt.Errorf("bridge: load registration: %w", err)
	}
	if reg.AppToken == "" || reg.ServerToken == "" {
		return nil, fmt.Errorf("bridge: registration %s has no as_token or hs_token", path)
	}
	return reg, nil
}

func randomToken() (string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("bridge: random token: %w", err)
	}
	return hex.EncodeToString(buf), nil
}
