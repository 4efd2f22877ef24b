package replicatest

import (
	"bufio"
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/internal/testwait"
	"github.com/entente-org/entente/store"
)

// gauge reads one unlabelled metric of replica r.
func gauge(t *testing.T, n *Node, r *Replica, name string) float64 {
	t.Helper()
	resp, err := n.HTTPClient().Get(r.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %s = %q", r.ID, name, v)
			}
			return f
		}
	}
	t.Fatalf("%s exports no %s", r.ID, name)
	return 0
}

// A conference hosted by another organisation, with four of this node's
// users on replicas that take two participants each: it spans two replicas.
// Only the owner holds the trunk to the host organisation, and the other
// replica's users reach it through the owner: everybody hears everybody
// byte for byte, the host sees one trunk from the node, and the node's
// replicas hold one trunk between them.
func TestSpanningConferenceHostedElsewhere(t *testing.T) {
	f := nodetest.New(t)
	n := Start(t, bin, 3, Options{CA: f.CA, CAFile: f.CAFile, Env: []string{"ENTENTE_CLUSTER_MAX_PARTICIPANTS=2"}})
	agency := f.Start(t, "Agency", nil)
	ctx := context.Background()
	nodeDID := "did:web:" + strings.ReplaceAll(n.Balancer.Addr(), ":", "%3A")
	n.CLI(t, "peers", "add", agency.DID(), "--name", "Agency")
	if err := (federation.TrustList{Store: agency.Store()}).Add(ctx, store.Peer{
		DID: nodeDID, Name: "Ministry", MayInvite: true, MayRelayMedia: true, AddedAt: time.Now().UTC(),
	}); err != nil {
		t.Fatal(err)
	}
	bruno, brunoTok := nodetest.User(t, agency, "bruno", "Bruno")
	conf, err := agency.Federation().CreateConference(ctx, bruno, "Hosted by the agency", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agency.Federation().Invite(ctx, bruno, conf.ID, nodeDID, nil); err != nil {
		t.Fatal(err)
	}
	names := []string{"ana", "ben", "cyd", "dan"}
	tokens := map[string]string{}
	for _, name := range names {
		tokens[name] = n.User(t, name)
	}
	testwait.Until(t, generous, func() bool {
		var inv []struct{ Conference string }
		return n.API(n.PublicURL, tokens["ana"], "GET", "/invitations", nil, &inv) == nil && len(inv) == 1 && inv[0].Conference == conf.ID
	}, "the agency's invitation never reached the node")
	if err := n.API(n.PublicURL, tokens["ana"], "POST", "/invitations/"+url.PathEscape(conf.ID)+"/accept", struct{}{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := agency.Federation().Join(ctx, bruno, conf.ID); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		testwait.Until(t, generous, func() bool {
			return n.API(n.PublicURL, tokens[name], "POST", "/conferences/"+url.PathEscape(conf.ID)+"/join", struct{}{}, nil) == nil
		}, "%s cannot join", name)
	}

	b := &Participant{Name: "bruno", Token: brunoTok, URL: mediaURL("https://"+agency.Addr().String(), conf.ID), HTTP: n.WebSocketClient()}
	b.Start()
	t.Cleanup(b.Close)
	everyone := []*Participant{b}
	for _, name := range names {
		everyone = append(everyone, n.participant(t, name, tokens[name], n.PublicURL, conf.ID))
	}
	start := time.Now()
	for _, p := range everyone {
		var others []*Participant
		for _, o := range everyone {
			if o != p {
				others = append(others, o)
			}
		}
		hears(t, p, start, others...)
	}
	for _, p := range everyone {
		if err := p.CheckPayloads(); err != nil {
			t.Fatal(err)
		}
	}
	if got := agency.SFU().TrunkStats().Trunks; got != 1 {
		t.Fatalf("the agency has %d trunks, want one from the node", got)
	}
	var trunks []int
	for _, r := range n.Replicas {
		trunks = append(trunks, int(gauge(t, n, r, "entente_media_trunks")))
	}
	// The owner: one trunk to the agency and one from each replica the
	// meeting spans; each of those: one, to the owner. On a busy machine a
	// participant still connecting may hold a seat for a moment, so the
	// meeting may span a third replica, but never two trunks on one link.
	owner, spanned := 0, 0
	for i, c := range trunks {
		if c > trunks[owner] {
			owner = i
		}
	}
	for i, c := range trunks {
		switch {
		case i == owner:
		case c == 1:
			spanned++
		case c != 0:
			t.Fatalf("trunks per replica %v: a replica other than the owner has %d", trunks, c)
		}
	}
	if spanned == 0 || trunks[owner] != 1+spanned {
		t.Fatalf("trunks per replica %v, want the owner's to the agency and one from each other replica with participants", trunks)
	}
}
