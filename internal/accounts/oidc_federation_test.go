package accounts_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/hydratest"
	"github.com/entente-org/entente/internal/nodetest"
)

// TestOIDCUnitInVerifiedRoster: a user signed in through OpenID Connect at
// one organisation joins another's conference; the host, and the roster every
// node shows, carry the unit the provider gave, from the join event the
// user's home node signed (spec/federation.md §6.1, §7).
func TestOIDCUnitInVerifiedRoster(t *testing.T) {
	f := nodetest.New(t)
	p := hydratest.Start(t, f.CA)
	finance := oidcNode(t, f, p, "Ministry of Finance", nil)
	agency := f.Start(t, "Statistics Agency", nil)
	nodetest.Trust(t, finance, agency)
	p.SetUser("sub-alice", alice)
	p.LoginAs("sub-alice")
	b := newBrowser(t, f)
	if got := b.signIn(finance); got != "/" {
		t.Fatalf("sign-in ends at %q", got)
	}
	_, s := b.session(finance)
	_, tok := nodetest.User(t, agency, "bruno", "Bruno Lefèvre")

	bearer := func(method, path string, body, out any) int {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, agency.PublicURL()+"/api/v1"+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := f.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	var conf federation.ConferenceView
	if code := bearer("POST", "/conferences", map[string]any{"title": "Budget 2027"}, &conf); code != 201 {
		t.Fatalf("create: %d", code)
	}
	if code := bearer("POST", "/conferences/"+conf.ID+"/invitations", map[string]any{"node": finance.DID()}, nil); code != 201 {
		t.Fatalf("invite: %d", code)
	}
	nodetest.Eventually(t, 15*time.Second, "the invitation at the ministry", func() bool {
		var inv []federation.Invitation
		code, _ := b.api(finance, "GET", "/invitations", "", nil, &inv)
		return code == 200 && len(inv) == 1
	})
	if code, raw := b.api(finance, "POST", "/invitations/"+conf.ID+"/accept", s.CSRF, nil, nil); code != 200 {
		t.Fatalf("accept: %d %s", code, raw)
	}
	if code, raw := b.api(finance, "POST", "/conferences/"+conf.ID+"/join", s.CSRF, map[string]any{}, nil); code != 200 {
		t.Fatalf("join: %d %s", code, raw)
	}
	want := federation.RosterMember{
		User: "amartin@" + finance.DID(), DisplayName: "Alice Martin", Organisation: "Ministry of Finance",
		Unit: "Direction du budget", Node: finance.DID(),
	}
	check := func(where string, r federation.Roster) bool {
		if len(r.Participants) != 1 {
			return false
		}
		got := r.Participants[0]
		want.JoinedSeq, want.JoinEvent = got.JoinedSeq, got.JoinEvent
		if got != want || len(got.JoinEvent) != 64 {
			t.Fatalf("%s roster member %+v, want %+v", where, got, want)
		}
		return true
	}
	nodetest.Eventually(t, 15*time.Second, "the participant at the host", func() bool {
		var r federation.Roster
		return bearer("GET", "/conferences/"+conf.ID+"/participants", nil, &r) == 200 && check("host", r)
	})
	nodetest.Eventually(t, 15*time.Second, "the participant at the home node", func() bool {
		var r federation.Roster
		code, _ := b.api(finance, "GET", "/conferences/"+conf.ID+"/participants", "", nil, &r)
		return code == 200 && check("home node", r)
	})
	// The join event the ministry signed carries the unit.
	recs, err := agency.Store().ListRecords(t.Context(), conf.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var joins []federation.JoinContent
	for _, r := range recs {
		if r.EventType != federation.TypeJoin {
			continue
		}
		env, err := federation.DecodeEnvelope(r.Event)
		if err != nil {
			t.Fatal(err)
		}
		payload, err := env.PayloadBytes()
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Origin  string                 `json:"origin"`
			Content federation.JoinContent `json:"content"`
		}
		if err := json.Unmarshal(payload, &p); err != nil || p.Origin != finance.DID() {
			t.Fatalf("join payload %s: %v", payload, err)
		}
		joins = append(joins, p.Content)
	}
	wantJoin := federation.JoinContent{User: want.User, DisplayName: "Alice Martin", Organisation: "Ministry of Finance", Unit: "Direction du budget"}
	if len(joins) != 1 || joins[0] != wantJoin {
		t.Fatalf("join events %+v, want %+v", joins, wantJoin)
	}
}
