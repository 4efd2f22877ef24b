package web_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/nodetest"
)

// TestBrowserFrenchAfterSwitch switches the call screen to French in the
// middle of a call: the user's own name ("(vous)"), the badges and labels
// of the tiles and of the participants' list, the chat's names and times
// (24-hour) and the connection's figures ("0,0 %") all follow.
func TestBrowserFrenchAfterSwitch(t *testing.T) {
	requireChromium(t)
	f := nodetest.New(t)
	n := f.Start(t, "Préfecture", nil)
	alice, aliceTok := nodetest.User(t, n, "alice", "Alice Martin")
	conf, err := n.Federation().Create(context.Background(), alice, federation.CreateContent{Title: "Point presse"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := callBrowser(t, n)
	enterCall(t, ctx, n, conf.ID, aliceTok, true)
	me := fmt.Sprintf(`#stage .tile[data-user=%s][data-source=camera]`, quote("alice@"+n.DID()))
	click(t, ctx, "#call-hand")
	click(t, ctx, "#call-mic")
	waitText(t, ctx, me+" .badge.hand", "Hand raised")
	click(t, ctx, "#call-chat")
	click(t, ctx, "#call-people")
	run(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#chat-input"), "Bonjour"),
		chromedp.Click(chromedp.CSS("#chat-send")))
	waitText(t, ctx, "#chat-messages li:last-child .chat-name", "Alice Martin (you)")
	waitFor(t, ctx, 20*time.Second, `document.querySelector('#people-list li .card-title')`)
	checkQuality(t, ctx)

	setLanguage(t, ctx, "fr")
	waitText(t, ctx, me+" .tile-name", "Alice Martin (vous)")
	waitText(t, ctx, me+" .badge.hand", "Main levée")
	waitText(t, ctx, me+" .badge.muted", "Micro coupé")
	if label := eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%s).getAttribute('aria-label')`, quote(me))); label != "Alice Martin (vous), Préfecture, Micro coupé, Main levée" {
		t.Errorf("tile label %q", label)
	}
	waitText(t, ctx, "#chat-messages li:last-child .chat-name", "Alice Martin (vous)")
	waitText(t, ctx, "#people-list li .card-title", "Alice Martin (vous)")
	at := eval[string](t, ctx, `document.querySelector('#chat-messages li:last-child time').textContent`)
	want := eval[string](t, ctx, `(() => { const d = new Date(document.querySelector('#chat-messages li:last-child time').getAttribute('datetime')); return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0') })()`)
	if at != want {
		t.Errorf("chat time in French %q, want %q (24-hour)", at, want)
	}
	// The connection's figures, as the next measurement shows them.
	fr := regexp.MustCompile(`^Connexion : (bonne|moyenne|mauvaise) \(\d+,\d % perdus, \d+ ms\)$`)
	waitFor(t, ctx, 20*time.Second, fmt.Sprintf(`%s.test(document.querySelector('#call-quality').textContent)`, "/"+fr.String()+"/"))
	screenshot(t, ctx, "call-french")
}
