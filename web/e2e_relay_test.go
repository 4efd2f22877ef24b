package web_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// A user of the city sees the agency's participant marked as "media not
// shared with your organisation by its policy" while the agency does not
// let the hosting ministry relay its media, and sees the agency's camera
// again once it does.
func TestBrowserShowsMediaWithheldByPolicy(t *testing.T) {
	requireChromium(t)
	f := nodetest.New(t)
	ministry := f.Start(t, "Ministère de la Coordination", nil)
	agency := f.Start(t, "Agence nationale de la statistique", nil)
	city := f.Start(t, "Ville de Lyon", nil)
	nodetest.Trust(t, ministry, agency, city)
	alice, _ := nodetest.User(t, ministry, "alice", "Alice Martin")
	bruno, brunoToken := nodetest.User(t, agency, "bruno", "Bruno Lefèvre")
	chloe, chloeToken := nodetest.User(t, city, "chloe", "Chloé Durand")
	brunoRef := "bruno@" + agency.DID()

	ctx := context.Background()
	conf, err := ministry.Federation().Create(ctx, alice, federation.CreateContent{Title: "Réunion à trois"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		n *nodetest.Node
		u localuser.User
	}{{agency, bruno}, {city, chloe}} {
		if _, err := ministry.Federation().Invite(ctx, alice, conf.ID, m.n.DID(), nil); err != nil {
			t.Fatal(err)
		}
		nodetest.Eventually(t, minWait, "the invitation at "+m.n.Name(), func() bool {
			_, err := m.n.Store().GetConference(ctx, conf.ID)
			return err == nil
		})
		if _, _, err := m.n.Federation().Answer(ctx, m.u, conf.ID, true); err != nil {
			t.Fatal(err)
		}
	}

	cityCtx := callBrowser(t, agency, city)
	agencyCtx := newProfile(t, cityCtx)
	enterCall(t, agencyCtx, agency, conf.ID, brunoToken, true)
	enterCall(t, cityCtx, city, conf.ID, chloeToken, true)
	waitMedia(t, cityCtx, brunoRef, false)
	tile := fmt.Sprintf(`#stage .tile[data-user=%s][data-source=camera]`, quote(brunoRef))
	badge := tile + " .badge.withheld"
	if eval[bool](t, cityCtx, fmt.Sprintf(`!!document.querySelector(%s)`, quote(badge))) {
		t.Fatal("the agency's tile is marked withheld while the agency allows relaying")
	}

	// The agency's administrators stop letting the ministry relay their
	// media, during the call.
	setRelay := func(relay bool) {
		t.Helper()
		err := federation.TrustList{Store: agency.Store()}.Add(ctx, store.Peer{
			DID: ministry.DID(), Name: ministry.Name(), MayInvite: true, MayRelayMedia: relay, AddedAt: time.Now().UTC(),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setRelay(false)
	waitText(t, cityCtx, badge, "Media not shared with your organisation by its policy")
	if label := eval[string](t, cityCtx, fmt.Sprintf(`document.querySelector(%s).getAttribute('aria-label')`, quote(tile))); label !=
		"Bruno Lefèvre, Agence nationale de la statistique, Media not shared with your organisation by its policy" {
		t.Fatalf("the agency's tile is labelled %q", label)
	}
	waitFor(t, cityCtx, 10*time.Second, fmt.Sprintf(`!document.querySelector('#sounds audio[data-user=%s]')`, quote(brunoRef)))
	click(t, cityCtx, "#call-people")
	waitText(t, cityCtx, fmt.Sprintf(`#people-list li[data-user=%s] .badge.withheld`, quote(brunoRef)), "Media not shared with your organisation by its policy")
	screenshot(t, cityCtx, "call-media-withheld")

	setRelay(true)
	waitFor(t, cityCtx, 20*time.Second, fmt.Sprintf(`!document.querySelector(%s)`, quote(badge)))
	waitMedia(t, cityCtx, brunoRef, false)
	if eval[bool](t, cityCtx, fmt.Sprintf(`!!document.querySelector('#people-list li[data-user=%s] .badge.withheld')`, quote(brunoRef))) {
		t.Fatal("the people panel still marks the agency's participant withheld")
	}
}
