package media_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/internal/testwait"
	"github.com/entente-org/entente/media"
)

// Three organisations in one call hosted by the ministry: when the agency
// turns may_relay_media off for the ministry during the call, the city
// stops receiving the agency's media within moments and its users see the
// agency's participant marked; turning it back on restores both.
func TestRelayPolicyChangeReachesLiveCall(t *testing.T) {
	const wait = 20 * time.Second
	f := nodetest.New(t)
	a, b, c := f.Start(t, "Ministry", nil), f.Start(t, "Agency", nil), f.Start(t, "City", nil)
	nodetest.Trust(t, a, b, c)
	ctx := context.Background()
	alice, aliceTok := nodetest.User(t, a, "alice", "Alice")
	bruno, brunoTok := nodetest.User(t, b, "bruno", "Bruno")
	chloe, chloeTok := nodetest.User(t, c, "chloe", "Chloé")
	if _, err := accounts.AddUser(ctx, b.Store(), "root", "Agency admin", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	adminTok, err := accounts.IssueToken(ctx, b.Store(), "root", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	conf, err := a.Federation().CreateConference(ctx, alice, "Relay policy", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		n *nodetest.Node
		u localuser.User
	}{{b, bruno}, {c, chloe}} {
		if _, err := a.Federation().Invite(ctx, alice, conf.ID, m.n.DID(), nil); err != nil {
			t.Fatal(err)
		}
		nodetest.Eventually(t, wait, "invitation", func() bool {
			inv, _ := m.n.Federation().Invitations(ctx, m.u)
			return len(inv) == 1
		})
		if _, _, err := m.n.Federation().Answer(ctx, m.u, conf.ID, true); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []struct {
		n *nodetest.Node
		u localuser.User
	}{{a, alice}, {b, bruno}, {c, chloe}} {
		if _, _, err := m.n.Federation().Join(ctx, m.u, conf.ID); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, wait, "every replica knows all three participants", func() bool {
		for _, n := range []*nodetest.Node{a, b, c} {
			v, _ := n.Federation().ConferenceDetail(ctx, conf.ID)
			if len(v.Participants) != 3 {
				return false
			}
		}
		return true
	})

	hc := f.Client()
	mediaURL := func(n *nodetest.Node, token string) string {
		return strings.Replace(n.PublicURL(), "https://", "wss://", 1) + "/api/v1/conferences/" + conf.ID + "/media?access_token=" + token
	}
	brunoRef := federation.UserRef("bruno", b.DID())
	pub := media.DialNode(t, mediaURL(b, brunoTok), hc, brunoRef)
	onA := media.DialNode(t, mediaURL(a, aliceTok), hc, federation.UserRef("alice", a.DID()))
	onC := media.DialNode(t, mediaURL(c, chloeTok), hc, federation.UserRef("chloe", c.DID()))
	camera := pub.PublishCamera()
	id := onC.TrackOf(camera, brunoRef, wait)
	onC.WaitMedia(camera, id, 30, wait)
	onA.WaitMedia(camera, onA.TrackOf(camera, brunoRef, wait), 10, wait)
	isBruno := func(typ string) func(map[string]any) bool {
		return func(m map[string]any) bool { return m["type"] == typ && m["user"] == brunoRef }
	}
	joined, _ := onC.Await(0, "Bruno's participant_joined", wait, isBruno("participant_joined"))
	want := map[string]any{"type": "participant_joined", "user": brunoRef, "display_name": "Bruno", "organisation": "Agency"}
	if !media.SameMessage(joined, want) {
		t.Fatalf("participant_joined of Bruno on the city's node = %v, want %v", joined, want)
	}

	// The agency's administrator changes its trust entry for the ministry.
	setRelay := func(relay bool) {
		t.Helper()
		body, _ := json.Marshal(federation.PeerView{DID: a.DID(), Name: "Ministry", MayInvite: true, MayRelayMedia: relay})
		req, _ := http.NewRequest("POST", b.PublicURL()+"/admin/v1/peers", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminTok)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /admin/v1/peers (may_relay_media %t): %d", relay, resp.StatusCode)
		}
	}
	mark := onC.Seen()
	setRelay(false)
	changed := time.Now()
	onC.Await(mark, "track_removed of Bruno's camera", wait, func(m map[string]any) bool {
		return m["type"] == "track_removed" && m["track"] == id
	})
	upd, _ := onC.Await(mark, "participant_updated of Bruno", wait, isBruno("participant_updated"))
	t.Logf("the city's client was told %s after the change", time.Since(changed).Round(time.Millisecond))
	want = map[string]any{"type": "participant_updated", "user": brunoRef, "display_name": "Bruno", "organisation": "Agency", "media_withheld": true}
	if !media.SameMessage(upd, want) {
		t.Fatalf("participant_updated on the city's node = %v, want %v", upd, want)
	}
	// Packets already on their way may still land; then nothing more.
	testwait.Until(t, wait, func() bool { return onC.Received(id, time.Second) == 0 },
		"the city still receives the agency's camera after the agency withdrew its permission")
	// The ministry's own users still see the agency.
	onA.WaitMedia(camera, id, 20, wait)
	// Nothing changed for the agency's own view of the call either.
	if n := onA.Received(id, time.Second); n == 0 {
		t.Fatal("the ministry's client stopped receiving the agency's camera")
	}

	mark = onC.Seen()
	setRelay(true)
	upd, _ = onC.Await(mark, "participant_updated of Bruno", wait, isBruno("participant_updated"))
	delete(want, "media_withheld")
	if !media.SameMessage(upd, want) {
		t.Fatalf("participant_updated on the city's node once relaying is allowed again = %v, want %v", upd, want)
	}
	onC.Await(mark, "track_added of Bruno's camera", wait, func(m map[string]any) bool {
		return m["type"] == "track_added" && m["id"] == id && m["owner"] == brunoRef
	})
	onC.WaitMedia(camera, id, 30, wait)
}
