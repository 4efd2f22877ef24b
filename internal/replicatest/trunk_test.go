package replicatest

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// A peer organisation's trunk offer that lands on a replica not running the
// conference is forwarded to the one that does: the peer's user and the
// node's user hear each other, byte for byte. The replica running the
// conference is out of the load balancer, so that everything from outside
// lands on the others.
func TestPeerTrunkForwardedToTheConferencesReplica(t *testing.T) {
	f := nodetest.New(t)
	n := Start(t, bin, 3, Options{CA: f.CA, CAFile: f.CAFile})
	agency := f.Start(t, "Agency", nil)
	ctx := context.Background()
	nodeDID := "did:web:" + strings.ReplaceAll(n.Balancer.Addr(), ":", "%3A")
	n.CLI(t, "peers", "add", agency.DID(), "--name", "Agency")
	if err := (federation.TrustList{Store: agency.Store()}).Add(ctx, store.Peer{
		DID: nodeDID, Name: "Ministry", MayInvite: true, MayRelayMedia: true, AddedAt: time.Now().UTC(),
	}); err != nil {
		t.Fatal(err)
	}
	conf, tokens := meeting(t, n, "alice")
	bruno, brunoTok := nodetest.User(t, agency, "bruno", "Bruno")
	if err := n.API(n.PublicURL, tokens["alice"], "POST", "/conferences/"+url.PathEscape(conf)+"/invitations",
		map[string]any{"node": agency.DID()}, nil); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, generous, "the invitation at the agency", func() bool {
		_, err := agency.Store().GetConference(ctx, conf)
		return err == nil
	})
	if _, _, err := agency.Federation().Answer(ctx, bruno, conf, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := agency.Federation().Join(ctx, bruno, conf); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, generous, "bruno may take part at the agency", func() bool {
		return agency.Federation().MayParticipate(ctx, conf, "bruno@"+agency.DID()) == nil
	})

	// Alice's first connection places the conference; its replica then
	// leaves the load balancer (it still answers its internal_url).
	alice := n.participant(t, "alice", tokens["alice"], n.PublicURL, conf)
	own := owner(t, n, conf, "")
	n.Balancer.Remove(own.Addr)
	agencyURL := "https://" + agency.Addr().String()
	b := &Participant{Name: "bruno", Token: brunoTok, URL: mediaURL(agencyURL, conf), HTTP: n.WebSocketClient()}
	b.Start()
	t.Cleanup(b.Close)
	start := time.Now()
	hears(t, b, start, alice)
	hears(t, alice, start, b)
	for _, p := range []*Participant{alice, b} {
		if err := p.CheckPayloads(); err != nil {
			t.Fatal(err)
		}
	}
	forwarded := false
	for _, r := range n.Replicas {
		if r != own && r.HasLog("trunk offer forwarded to the conference's replica", conf, "to="+own.ID) {
			forwarded = true
		}
	}
	if !forwarded {
		t.Fatalf("no replica logged forwarding the agency's trunk offer to %s", own.ID)
	}
	if !own.HasLog("trunk", conf) {
		t.Fatalf("%s, which runs the conference, shows no trunk:\n%s", own.ID, own.Logs(40))
	}

	// The replica running the conference dies: the agency's trunk comes
	// back to the survivor that takes the conference over.
	killed := time.Now()
	own.Kill(t)
	last := hears(t, b, killed, alice)
	if l := hears(t, alice, killed, b); l.After(last) {
		last = l
	}
	next := owner(t, n, conf, own.ID)
	t.Logf("SIGKILL of %s to media flowing again between the node and the agency through %s: %s",
		own.ID, next.ID, last.Sub(killed).Round(time.Millisecond))
	for _, p := range []*Participant{alice, b} {
		if err := p.CheckPayloads(); err != nil {
			t.Fatal(err)
		}
	}
}
