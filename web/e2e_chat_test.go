package web_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/entente-org/entente/internal/nodetest"
)

// The browser client applies a chat.edit or chat.redact only when it comes
// from the author of the line it names: the same user and the same Matrix
// "as" (spec/federation.md §5.2). Nodes already refuse the others; the
// client holds to the rule on its own, whatever reaches it. The participant
// list shows a peer's own organisation label only beside the name this node
// gives it. The panels run here, in Chromium, as the client's own module.
func TestBrowserChatChangesOnlyByTheirAuthor(t *testing.T) {
	requireChromium(t)
	f := nodetest.New(t)
	n := f.Start(t, "Préfecture", nil)
	ctx := browser(t, n)
	run(t, ctx, chromedp.Navigate(n.PublicURL()+"/app/"))
	setLanguage(t, ctx, "en")
	eval[bool](t, ctx, `(() => {
  window.chatRule = null;
  const src = document.querySelector('script[type=module]').src.replace(/app\.js$/, 'call-panels.js');
  import(src).then(({ chatPanel, peoplePanel }) => {
    const p = chatPanel({ send: async () => {} });
    p.el.hidden = false;
    document.body.append(p.el);
    const at = new Date().toISOString();
    p.add({ id: 'l1', kind: 'chat', user: 'bruno@did:web:agency.example', text: 'Bonjour', at }, 'Bruno');
    p.add({ id: 'l2', kind: 'chat', user: 'did:web:agency.example', as: '@dora:matrix.example', text: 'Depuis Matrix', at }, 'Dora');
    const applied = [
      p.change({ id: 'c1', kind: 'chat.edit', ref: 'l1', user: 'chloe@did:web:city.example', text: 'Forged', at }),
      p.change({ id: 'c2', kind: 'chat.redact', ref: 'l1', user: 'did:web:agency.example', as: '@dora:matrix.example', at }),
      p.change({ id: 'c3', kind: 'chat.edit', ref: 'l2', user: 'did:web:agency.example', text: 'Forged', at }),
      p.change({ id: 'c4', kind: 'chat.redact', ref: 'l9', user: 'bruno@did:web:agency.example', at }),
      p.change({ id: 'c5', kind: 'chat.edit', ref: 'l1', user: 'bruno@did:web:agency.example', text: 'Bonjour à tous', at }),
      p.change({ id: 'c5', kind: 'chat.edit', ref: 'l1', user: 'bruno@did:web:agency.example', text: 'Bonjour à tous', at }),
      p.change({ id: 'c6', kind: 'chat.redact', ref: 'l2', user: 'did:web:agency.example', as: '@dora:matrix.example', at }),
    ];
    const texts = [...p.el.querySelectorAll('.chat-text')].map((e) => e.textContent);
    // A peer's own label shows only beside the name this node gives it.
    const people = peoplePanel({ me: 'ann@did:web:ministry.example', isModerator: () => false, act: () => {} });
    document.body.append(people.el);
    people.render({ participants: [
      { user: 'bruno@did:web:agency.example', display_name: 'Bruno', organisation: 'National Statistics Agency', organisation_label: 'Ministry' },
      { user: 'chloe@did:web:city.example', display_name: 'Chloé', organisation: 'City' },
    ], lobby: [] }, () => ({}));
    const orgs = [...people.el.querySelectorAll('#people-list .meta')].map((e) => e.textContent);
    window.chatRule = JSON.stringify({ applied, texts, orgs });
  });
  return true;
})()`)
	waitFor(t, ctx, 10*time.Second, `window.chatRule`)
	var got struct {
		Applied []bool
		Texts   []string
		Orgs    []string
	}
	if err := json.Unmarshal([]byte(eval[string](t, ctx, `window.chatRule`)), &got); err != nil {
		t.Fatal(err)
	}
	wantApplied := []bool{false, false, false, false, true, false, true}
	wantTexts := []string{"Bonjour à tous (edited)", "Message removed by its author"}
	if len(got.Applied) != len(wantApplied) || len(got.Texts) != len(wantTexts) {
		t.Fatalf("applied %v, texts %q; want %v, %q", got.Applied, got.Texts, wantApplied, wantTexts)
	}
	for i := range wantApplied {
		if got.Applied[i] != wantApplied[i] {
			t.Errorf("change %d applied = %t, want %t", i+1, got.Applied[i], wantApplied[i])
		}
	}
	for i := range wantTexts {
		if got.Texts[i] != wantTexts[i] {
			t.Errorf("line %d reads %q, want %q", i+1, got.Texts[i], wantTexts[i])
		}
	}
	if want := []string{"National Statistics Agency — calls itself “Ministry”", "City"}; len(got.Orgs) != 2 || got.Orgs[0] != want[0] || got.Orgs[1] != want[1] {
		t.Errorf("participants' organisations read %q, want %q", got.Orgs, want)
	}
}
