package bridge_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/bridge"
	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/dendritetest"
	"github.com/entente-org/entente/internal/nodetest"
)

// A whole node with its bridge against a real Dendrite: an administrator
// links a Matrix room to a conference, the conference's chat reaches the
// room and the room's chat reaches the conference, and a Matrix user signs
// in with an OpenID token and joins as a guest of the organisation.
func TestNodeBridgesAConferenceToMatrix(t *testing.T) {
	f, n, hs := startBridgedNode(t)
	var mu sync.Mutex
	var signals []federation.Signal
	n.OnSignal(func(s federation.Signal) {
		mu.Lock()
		signals = append(signals, s)
		mu.Unlock()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	alice, aliceTok := nodetest.User(t, n, "alice", "Alice Martin")
	if _, err := accounts.AddUser(ctx, n.Store(), "root", "Admin", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	adminTok, _ := accounts.IssueToken(ctx, n.Store(), "root", time.Hour, time.Now())
	conf, err := n.Federation().CreateConference(ctx, alice, "Budget 2027", nil)
	if err != nil {
		t.Fatal(err)
	}

	// Mona's room, linked to the conference by the node's administrator.
	mona := hs.User(ctx, "mona")
	room, err := mona.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Budget",
		PowerLevelOverride: botAdministers(mona.UserID)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mona.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: id.NewUserID("entente", dendritetest.ServerName)}); err != nil {
		t.Fatal(err)
	}
	admin := newAPI(t, f, n, adminTok)
	var linked map[string]any
	admin.call("POST", "/admin/v1/conferences/"+conf.ID+"/matrix", map[string]string{"room_id": room.RoomID.String()}, &linked, 200)
	if linked["room_id"] != room.RoomID.String() {
		t.Fatalf("linked %v", linked)
	}

	// Alice joins the call and says hello: Mona sees it in her room.
	aliceAPI := newAPI(t, f, n, aliceTok)
	aliceAPI.call("POST", "/api/v1/conferences/"+conf.ID+"/join", nil, nil, 200)
	aliceAPI.call("POST", "/api/v1/conferences/"+conf.ID+"/signals", map[string]string{"kind": "chat", "text": "Bonjour Mona"}, nil, 200)
	nodetest.Eventually(t, 30*time.Second, "Alice's line in the Matrix room", func() bool {
		return hasMessage(ctx, mona, room.RoomID, "Bonjour Mona")
	})

	// Mona answers in Matrix: the conference hears it under her Matrix ID.
	if _, err := mona.SendText(ctx, room.RoomID, "Bonjour Alice"); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, "Mona's line in the conference", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range signals {
			if s.Kind == "chat" && s.Text == "Bonjour Alice" && s.As == "@mona:localhost" && s.User == n.DID() {
				return true
			}
		}
		return false
	})

	// Mona signs in with an OpenID token from her homeserver and joins the
	// conference as a Matrix guest, under her homeserver's name.
	tok, err := mona.RequestOpenIDToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var login map[string]string
	anon := newAPI(t, f, n, "")
	anon.call("POST", "/api/v1/matrix/openid", map[string]string{"access_token": tok.AccessToken, "matrix_server_name": tok.MatrixServerName}, &login, 200)
	if login["user"] != "@mona:localhost" || !strings.HasPrefix(login["token"], "ent_") {
		t.Fatalf("Matrix sign-in: %v", login)
	}
	anon.call("POST", "/api/v1/matrix/openid", map[string]string{"access_token": "forged", "matrix_server_name": tok.MatrixServerName}, nil, 401)
	guest := newAPI(t, f, n, login["token"])
	guest.call("POST", "/api/v1/conferences/"+conf.ID+"/join", nil, nil, 200)
	var roster federation.Roster
	guest.call("GET", "/api/v1/conferences/"+conf.ID+"/participants", nil, &roster, 200)
	found := false
	for _, p := range roster.Participants {
		if p.DisplayName == "@mona:localhost" && p.Organisation == "localhost (Matrix)" {
			found = true
		}
	}
	if !found {
		t.Fatalf("Mona is not in the roster as a Matrix guest: %+v", roster.Participants)
	}
}

// startBridgedNode starts a node named Ministry whose Matrix bridge is
// registered with a real Dendrite, and which signs in that homeserver's
// users with OpenID.
func startBridgedNode(t *testing.T) (*nodetest.Federation, *nodetest.Node, *dendritetest.Homeserver) {
	t.Helper()
	dir := t.TempDir()
	listen := dendritetest.FreeAddr(t)
	reg, err := bridge.NewRegistration(bridge.RegistrationOptions{URL: "http://" + listen, HomeserverDomain: dendritetest.ServerName, BotLocalpart: "entente"})
	if err != nil {
		t.Fatal(err)
	}
	regFile := filepath.Join(dir, "registration.yaml")
	if err := bridge.WriteRegistration(regFile, reg, false); err != nil {
		t.Fatal(err)
	}
	hs := dendritetest.Start(t, regFile)
	f := nodetest.New(t)
	n := f.Start(t, "Ministry", func(c *config.Config) {
		c.Bridge = config.Bridge{
			Enabled: true, HomeserverURL: hs.URL, HomeserverDomain: dendritetest.ServerName, Listen: listen,
			Registration: regFile, BotLocalpart: "entente", GhostPrefix: "entente_",
			OpenIDServerName: dendritetest.ServerName, OpenIDBaseURL: hs.URL,
		}
	})
	return f, n, hs
}

// botAdministers is the power levels of a room its owner shares with the
// bridge bot as the bridge needs: both at 100.
func botAdministers(owner id.UserID) *event.PowerLevelsEventContent {
	return &event.PowerLevelsEventContent{Users: map[id.UserID]int{owner: 100, id.NewUserID("entente", dendritetest.ServerName): 100}}
}

// hasMessage reports whether the room holds a text message with body.
func hasMessage(ctx context.Context, cli *mautrix.Client, room id.RoomID, body string) bool {
	resp, err := cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		return false
	}
	for _, evt := range resp.Chunk {
		if evt.Type == event.EventMessage && evt.Content.Raw["body"] == body {
			return true
		}
	}
	return false
}

// api calls a node's HTTP APIs as one bearer token.
type api struct {
	t     *testing.T
	f     *nodetest.Federation
	base  string
	token string
}

func newAPI(t *testing.T, f *nodetest.Federation, n *nodetest.Node, token string) *api {
	return &api{t: t, f: f, base: n.PublicURL(), token: token}
}

func (a *api) call(method, path string, body, out any, status int) {
	a.t.Helper()
	var r *strings.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	} else {
		r = strings.NewReader("")
	}
	req, _ := newRequest(method, a.base+path, r)
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.f.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	json.NewDecoder(resp.Body).Decode(&raw)
	if resp.StatusCode != status {
		a.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

func newRequest(method, url string, body *strings.Reader) (*http.Request, error) {
	req, err := http.NewRequest(method, url, body)
	if err == nil && body.Len() > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, err
}
