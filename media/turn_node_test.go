package media_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/nodetest"
)

// A node with the embedded TURN server gives each joining client its own
// short-lived TURN credentials.
func TestNodeGivesTURNCredentialsOnJoin(t *testing.T) {
	f := nodetest.New(t)
	n := f.Start(t, "Ministry", func(c *config.Config) {
		c.Media.TURNListen = "127.0.0.1:0"
		c.Media.TURNRelayIP = "127.0.0.1"
	})
	alice, tok := nodetest.User(t, n, "alice", "Alice")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conf, err := n.Federation().CreateConference(ctx, alice, "With TURN", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Federation().Join(ctx, alice, conf.ID); err != nil {
		t.Fatal(err)
	}
	wsURL := strings.Replace(n.PublicURL(), "https://", "wss://", 1) + "/api/v1/conferences/" + conf.ID + "/media?access_token=" + tok
	c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.CA.Pool()}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"join"}`)); err != nil {
		t.Fatal(err)
	}
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Type       string `json:"type"`
			ICEServers []struct {
				URLs       []string `json:"urls"`
				Username   string   `json:"username"`
				Credential string   `json:"credential"`
			} `json:"ice_servers"`
		}
		json.Unmarshal(data, &m)
		if m.Type != "joined" {
			continue
		}
		if len(m.ICEServers) != 1 || len(m.ICEServers[0].URLs) != 1 ||
			!strings.HasPrefix(m.ICEServers[0].URLs[0], "turn:127.0.0.1:") || !strings.HasSuffix(m.ICEServers[0].URLs[0], "?transport=udp") ||
			m.ICEServers[0].Username == "" || m.ICEServers[0].Credential == "" {
			t.Fatalf("joined.ice_servers = %s", data)
		}
		return
	}
}
