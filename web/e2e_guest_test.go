package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserGuestLink follows a conference's moderator who makes a guest
// link in the call screen, and a person outside every institution who opens
// it, types a name, waits in the lobby although it is off, is admitted and
// is shown as "Name (guest, unverified)" of the host's institution, to the
// host's users and to another institution's alike; the moderator then
// revokes the link (spec/client-api.md §7).
func TestBrowserGuestLink(t *testing.T) {
	axe := axeScript(t)
	fc := newFederatedCall(t, "Consultation publique")
	ministry, conf := fc.ministry, fc.conf
	ctx := context.Background()
	aCtx := callBrowser(t, fc.ministry, fc.agency)
	gCtx := newProfile(t, aCtx)
	bCtx := newProfile(t, aCtx)
	enterCall(t, aCtx, ministry, conf, fc.aliceTok, true)
	enterCall(t, bCtx, fc.agency, conf, fc.brunoTok, true)

	// The moderator makes a link from the moderation panel.
	click(t, aCtx, "#call-moderation")
	click(t, aCtx, "#mod-guests")
	waitFor(t, aCtx, 10*time.Second, `!document.querySelector('#guests-panel').hidden`)
	click(t, aCtx, "#guests-create")
	waitText(t, aCtx, "#guests-result", "Guest link created. Copy it now: it will not be shown again.")
	url := eval[string](t, aCtx, `document.querySelector('#guests-url').value`)
	if !strings.HasPrefix(url, ministry.PublicURL()+"/app/guest#gl-") {
		t.Fatalf("guest link %q", url)
	}
	waitFor(t, aCtx, 10*time.Second, `document.querySelectorAll('#guests-list li[data-link]').length === 1`)
	audit(t, aCtx, axe, "the guest links panel")

	// The guest opens it, types a name and joins.
	run(t, gCtx, chromedp.Navigate(url))
	setLanguage(t, gCtx, "en")
	waitText(t, gCtx, "#guest-title", "Join as a guest")
	if href := eval[string](t, gCtx, `location.href`); href != ministry.PublicURL()+"/app/guest" {
		t.Errorf("address bar %q still holds the link", href)
	}
	audit(t, gCtx, axe, "the guest's screen")
	click(t, gCtx, "#guest-submit")
	waitText(t, gCtx, "#guest-error", "Type your name.")
	run(t, gCtx, chromedp.SendKeys(chromedp.CSS("#guest-name"), "Zoé Durand"))
	click(t, gCtx, "#guest-submit")
	waitFor(t, gCtx, 20*time.Second, `document.querySelector('#join') && !document.querySelector('#join').disabled`)
	waitFor(t, gCtx, 20*time.Second, `(() => { const v = document.querySelector('#preview'); return v && v.readyState >= 2 && v.videoWidth > 0 })()`)
	eval[bool](t, gCtx, recordPeerConnections)
	click(t, gCtx, "#join")
	// The lobby is off, yet the guest waits to be admitted.
	waitText(t, gCtx, "#call-waiting", "Waiting to be admitted. A moderator of the host will let you in.")

	roster, err := ministry.Federation().LocalRoster(ctx, conf)
	if err != nil || len(roster.Lobby) != 1 {
		t.Fatalf("lobby %+v, %v", roster.Lobby, err)
	}
	guestRef := roster.Lobby[0].User
	click(t, aCtx, "#call-people")
	waiting := fmt.Sprintf(`#lobby-list li[data-user=%s]`, quote(guestRef))
	waitFor(t, aCtx, 20*time.Second, fmt.Sprintf(`document.querySelector(%s)`, quote(waiting)))
	waitFor(t, aCtx, 10*time.Second, fmt.Sprintf(`document.querySelector(%s).textContent.includes('Zoé Durand (guest, unverified)')`, quote(waiting)))
	waitText(t, aCtx, waiting+" .meta", "Ministère de la Coordination")
	clickInList(t, aCtx, waiting+" button.primary")
	waitText(t, gCtx, "#call-status", "Connected.")

	// Both see each other; the guest's tile carries the label.
	waitMedia(t, aCtx, guestRef, false)
	tile := fmt.Sprintf(`#stage .tile[data-user=%s][data-source=camera]`, quote(guestRef))
	waitText(t, aCtx, tile+" .tile-name", "Zoé Durand (guest, unverified)")
	waitText(t, aCtx, tile+" .tile-org", "Ministère de la Coordination")
	// The other organisation sees them the same way, through the trunk.
	waitMedia(t, bCtx, guestRef, false)
	waitText(t, bCtx, tile+" .tile-name", "Zoé Durand (guest, unverified)")
	waitText(t, bCtx, tile+" .tile-org", "Ministère de la Coordination")

	// The moderator revokes the link; it no longer lets anyone in.
	clickInList(t, aCtx, "#guests-list button[data-revoke]")
	waitText(t, aCtx, "#guests-result", "Guest link revoked: no one else can join with it.")
	late := newProfile(t, aCtx)
	run(t, late, chromedp.Navigate(url))
	setLanguage(t, late, "en")
	run(t, late, chromedp.SendKeys(chromedp.CSS("#guest-name"), "Yann"))
	click(t, late, "#guest-submit")
	waitText(t, late, "#guest-error", "This guest link was withdrawn by a moderator. Ask the person who sent it for a new one.")
}
