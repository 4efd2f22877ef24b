package web_test

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/bridge"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/dendritetest"
	"github.com/entente-org/entente/internal/nodetest"
)

// A Matrix user in the conference's room opens the call with an OpenID
// token from their homeserver (as the room's widget does) and joins in the
// browser as a Matrix guest, under their Matrix ID and homeserver.
func TestBrowserMatrixUserJoins(t *testing.T) {
	requireChromium(t)
	listen := dendritetest.FreeAddr(t)
	reg, err := bridge.NewRegistration(bridge.RegistrationOptions{URL: "http://" + listen, HomeserverDomain: dendritetest.ServerName, BotLocalpart: "entente"})
	if err != nil {
		t.Fatal(err)
	}
	regFile := filepath.Join(t.TempDir(), "registration.yaml")
	if err := bridge.WriteRegistration(regFile, reg, false); err != nil {
		t.Fatal(err)
	}
	hs := dendritetest.Start(t, regFile)
	f := nodetest.New(t)
	n := f.Start(t, "Ministère de la Coordination", func(c *config.Config) {
		c.Bridge = config.Bridge{
			Enabled: true, HomeserverURL: hs.URL, HomeserverDomain: dendritetest.ServerName, Listen: listen,
			Registration: regFile, BotLocalpart: "entente", GhostPrefix: "entente_",
			OpenIDServerName: dendritetest.ServerName, OpenIDBaseURL: hs.URL,
		}
	})
	ctx := context.Background()
	alice, _ := nodetest.User(t, n, "alice", "Alice Martin")
	conf, err := n.Federation().CreateConference(ctx, alice, "Point hebdomadaire", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The conference's Matrix room, which Mona is in: only its members
	// may join as Matrix guests.
	mona := hs.User(ctx, "mona")
	room, err := mona.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat",
		// The bridge bot administers the room with Mona, as the bridge needs.
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{
			mona.UserID: 100, id.NewUserID("entente", dendritetest.ServerName): 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mona.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: id.NewUserID("entente", dendritetest.ServerName)}); err != nil {
		t.Fatal(err)
	}
	if err := n.Bridge().LinkRoom(ctx, conf.ID, room.RoomID.String()); err != nil {
		t.Fatal(err)
	}
	tok, err := mona.RequestOpenIDToken(ctx)
	if err != nil {
		t.Fatal(err)
	}

	b := browser(t, n)
	link := n.PublicURL() + "/app/conference/" + conf.ID + "#matrix_token=" + url.QueryEscape(tok.AccessToken) +
		"&matrix_server=" + url.QueryEscape(tok.MatrixServerName)
	run(t, b, chromedp.Navigate(link))
	setLanguage(t, b, "en")
	waitFor(t, b, 20*time.Second, `document.querySelector('#join') && !document.querySelector('#join').disabled`)
	if hash := eval[string](t, b, `location.hash`); hash != "" {
		t.Fatalf("the OpenID token stayed in the address bar: %q", hash)
	}
	run(t, b, chromedp.Click(chromedp.CSS("#join")))
	waitText(t, b, "#call-status", "Connected.")

	roster, err := n.Federation().LocalRoster(ctx, conf.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(roster.Participants) != 1 || roster.Participants[0].DisplayName != "@mona:localhost" ||
		roster.Participants[0].Organisation != "localhost (Matrix)" {
		t.Fatalf("roster %+v", roster.Participants)
	}
	screenshot(t, b, "matrix-guest-call")

	// A forged token signs no one in: the sign-in screen says why.
	other := newProfile(t, b)
	run(t, other, chromedp.Navigate(n.PublicURL()+"/app/conference/"+conf.ID+"#matrix_token=forged&matrix_server=localhost"))
	setLanguage(t, other, "en")
	waitText(t, other, "#signin-error", "Your Matrix account could not be checked. Open the link again from your Matrix room, or sign in below.")
}
