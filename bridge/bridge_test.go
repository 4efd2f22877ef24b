package bridge

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/appservice"

	"github.com/entente-org/entente/store"
)

// fakeConferences answers Conference from a map the test edits.
type fakeConferences struct {
	mu    sync.Mutex
	confs map[string]Conference
}

func (f *fakeConferences) Conference(_ context.Context, id string) (Conference, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.confs[id]
	if !ok {
		return Conference{}, fmt.Errorf("conference %s: %w", id, store.ErrNotFound)
	}
	c.Participants = append([]Participant(nil), c.Participants...)
	return c, nil
}

func (f *fakeConferences) set(c Conference) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.confs == nil {
		f.confs = make(map[string]Conference)
	}
	f.confs[c.ID] = c
}

// sentChat is one call of Options.SendChat.
type sentChat struct {
	Conference, MatrixUser, Kind, Text, Ref string
	// SignalID is what the fake answered: "sig-1", "sig-2", …
	SignalID string
}

// chatRecorder is a SendChat that records its calls.
type chatRecorder struct {
	mu   sync.Mutex
	sent []sentChat
}

func (c *chatRecorder) SendMatrixChat(_ context.Context, conference, matrixUser, kind, text, ref string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := fmt.Sprintf("sig-%d", len(c.sent)+1)
	c.sent = append(c.sent, sentChat{conference, matrixUser, kind, text, ref, id})
	return id, nil
}

func (c *chatRecorder) all() []sentChat {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sentChat(nil), c.sent...)
}

// env is a store, a registration and the options every bridge of a test
// shares, so that a test can replace its bridge as a restart would.
type env struct {
	store store.Store
	reg   *appservice.Registration
	confs *fakeConferences
	chat  *chatRecorder
	opts  Options
}

// testNodeDID is the DID of the node the tests' bridges belong to.
const testNodeDID = "did:web:ministry.example"

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := store.Open(t.Context(), store.Options{SQLitePath: filepath.Join(t.TempDir(), "entente.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	listen := freeAddr(t)
	reg, err := NewRegistration(RegistrationOptions{
		URL: "http://" + listen, HomeserverDomain: testServerName, BotLocalpart: "entente", GhostPrefix: "entente_",
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: st, reg: reg, confs: &fakeConferences{}, chat: &chatRecorder{}}
	e.opts = Options{
		Registration:     reg,
		HomeserverDomain: testServerName,
		// Replaced by the homeserver's own URL in tests that start one.
		HomeserverURL: "http://127.0.0.1:1",
		Listen:        listen,
		Store:         st,
		Conferences:   e.confs,
		NodeDID:       testNodeDID,
		Chat:          e.chat,
		Retries:       3,
		RetryBackoff:  200 * time.Millisecond,
	}
	return e
}

// writeRegistration saves the registration where the homeserver reads it.
func (e *env) writeRegistration(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "entente-registration.yaml")
	if err := WriteRegistration(path, e.reg, false); err != nil {
		t.Fatal(err)
	}
	return path
}

// start makes and starts a bridge on the env, stopped when the test ends.
func (e *env) start(t *testing.T) *Bridge {
	t.Helper()
	b, err := New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name   string
		modify func(o *Options)
		want   string
	}{
		{"no registration", func(o *Options) { o.Registration = nil }, "bridge: registration is required"},
		{"no tokens", func(o *Options) { o.Registration = &appservice.Registration{SenderLocalpart: "entente"} }, "bridge: registration has no as_token or hs_token"},
		{"no store", func(o *Options) { o.Store = nil }, "bridge: store is required"},
		{"no conferences", func(o *Options) { o.Conferences = nil }, "bridge: conferences are required"},
		{"no listen", func(o *Options) { o.Listen = "" }, "bridge: listen address is required"},
		{"no node DID", func(o *Options) { o.NodeDID = "" }, "bridge: node DID is required"},
		{"no homeserver", func(o *Options) { o.HomeserverURL = "" }, "bridge: missing homeserver URL"},
		{"no domain", func(o *Options) { o.HomeserverDomain = "" }, "bridge: missing homeserver domain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := e.opts
			tc.modify(&o)
			if _, err := New(o); err == nil || err.Error() != tc.want {
				t.Errorf("New: err = %v, want %q", err, tc.want)
			}
		})
	}
}
