package federation_test

import (
	"context"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/nodetest"
)

func TestAdminAPITrustList(t *testing.T) {
	f := nodetest.New(t)
	a := f.Start(t, "Ministry", nil)
	ctx := context.Background()
	if _, err := accounts.AddUser(ctx, a.Store(), "root", "Admin", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	adminTok, err := accounts.IssueToken(ctx, a.Store(), "root", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, userTok := nodetest.User(t, a, "alice", "Alice")
	admin := clientFor(t, f, a, adminTok)
	admin.base = a.PublicURL() + "/admin/v1"
	user := clientFor(t, f, a, userTok)
	user.base = admin.base

	peer := map[string]any{"did": "did:web:visio.agency.example", "name": "National Statistics Agency", "may_invite": true}
	if status, body := user.do("POST", "/peers", peer, nil); status != 403 {
		t.Fatalf("non-admin adding a peer: %d %s", status, body)
	}
	var added federation.PeerView
	admin.must(201, "POST", "/peers", peer, &added)
	if added.DID != "did:web:visio.agency.example" || added.Name != "National Statistics Agency" || !added.MayInvite || added.MayRelayMedia || added.AddedAt.IsZero() {
		t.Fatalf("added %+v", added)
	}
	var list []federation.PeerView
	admin.must(200, "GET", "/peers", nil, &list)
	if len(list) != 1 || list[0].DID != added.DID {
		t.Fatalf("list %+v", list)
	}
	for _, bad := range []map[string]any{
		{"did": "https://agency.example", "name": "X"},
		{"did": "did:web:agency.example", "name": ""},
		{"did": "did:web:agency.example", "name": "X", "key_pin": "not-a-key"},
		{"did": "did:web:agency.example", "name": "X", "colour": "blue"},
	} {
		if status, body := admin.do("POST", "/peers", bad, nil); status != 400 {
			t.Errorf("bad peer %v: %d %s", bad, status, body)
		}
	}
	admin.must(204, "DELETE", "/peers/did:web:visio.agency.example", nil, nil)
	if status, _ := admin.do("GET", "/peers/did:web:visio.agency.example", nil, nil); status != 404 {
		t.Fatalf("removed peer still there: %d", status)
	}
	if status, _ := clientFor(t, f, a, "ent_forged").do("GET", "/me", nil, nil); status != 401 {
		t.Fatalf("forged token: %d", status)
	}
}
