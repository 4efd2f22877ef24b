package federation_test

import (
	"context"
	"crypto/elliptic"
	"encoding/asn1"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// These tests hold a trusted peer to what spec §3.2, §3.4, §4.2 and §5.1
// let it do, and check that a stranger costs the node no more than its
// headers. Each refusal leaves the target's store as it was.

// rawAnswer is a response as received, headers included.
type rawAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (fx *secFixture) sendRaw(t *testing.T, req *http.Request) rawAnswer {
	t.Helper()
	resp, err := fx.web.Do(req)
	if err != nil {
		t.Fatalf("send %s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

// signedAnswer opens a 200's body: an envelope of typ from the target.
func (fx *secFixture) signedAnswer(t *testing.T, what string, a rawAnswer, typ string) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("%s: answered %d %s", what, a.status, a.body)
	}
	env, err := federation.DecodeEnvelope(a.body)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	pb, err := env.PayloadBytes()
	if err != nil {
		t.Fatal(err)
	}
	p, err := federation.DecodePayload(pb)
	if err != nil {
		t.Fatal(err)
	}
	if p.Type != typ || p.Origin != fx.target.DID() {
		t.Fatalf("%s: answer is a %s from %s, want a %s from the target", what, p.Type, p.Origin, typ)
	}
}

// TestSecuritySignedHostOfAnotherNode: a request the attacker signed for
// another node (its Host) is refused by the target, POST or GET, although
// everything else about it is valid (spec §3.2 step 4).
func TestSecuritySignedHostOfAnotherNode(t *testing.T) {
	fx := newSecFixture(t)
	a := fx.attacker
	otherHost := strings.TrimPrefix(fx.other.PublicURL(), "https://")
	// signedFor signs a request as one to the other node, and sends it to
	// the target under the other node's name, as a replay would.
	signedFor := func(t *testing.T, method, path string, body []byte) *http.Request {
		req := secSigned(t, a, method, fx.other.FederationEndpoint()+path, body, time.Now())
		out := secMoved(t, req, method, fx.target.FederationEndpoint()+path, body)
		out.Host = otherHost
		return out
	}
	refusal := secRefusal{401, "unauthorized", `request signed for host "` + otherHost + `", not this node's "` + strings.TrimPrefix(fx.target.PublicURL(), "https://") + `"`}
	fx.attack(t, "accept signed for another node's host", refusal, func(t *testing.T) *http.Request {
		return signedFor(t, http.MethodPost, "/inbox", fx.accept(t))
	})
	// The attacker was invited: the roster and the records are its to read,
	// but only when it asks the target itself.
	for _, c := range []struct{ path, typ string }{
		{"/conferences/" + fx.conference + "/roster", federation.TypeRoster},
		{"/conferences/" + fx.conference + "/records?after=0", federation.TypeRecords},
	} {
		fx.attack(t, "GET "+c.path+" signed for another node's host", refusal, func(t *testing.T) *http.Request {
			return signedFor(t, http.MethodGet, c.path, nil)
		})
		got := fx.sendRaw(t, secSigned(t, a, http.MethodGet, fx.target.FederationEndpoint()+c.path, nil, time.Now()))
		fx.signedAnswer(t, "control: GET "+c.path+" signed for the target", got, c.typ)
	}
	// The control: the accept signed for the target is applied.
	got := fx.deliver(t, a, fx.inbox, fx.accept(t))
	if got.status != http.StatusOK || got.receipt.Status != "accepted" {
		t.Fatalf("control: accept signed for the target answered %d %s", got.status, got.raw)
	}
}

// TestSecurityHighSSignature: the high-S twin of a valid ECDSA signature
// verifies too; spec §3.1 admits only the low one.
func TestSecurityHighSSignature(t *testing.T) {
	fx := newSecFixture(t)
	a := fx.attacker
	build := func(highS bool) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			body := fx.accept(t)
			req := secRequest(t, http.MethodPost, fx.inbox, body)
			keyID, priv := secKey(t, a)
			secSignRaw(t, req, body, priv, secRawSignature{keyID: keyID, highS: highS})
			return req
		}
	}
	fx.attack(t, "high-S HTTP signature", secRefusal{401, "unauthorized", "high S refused"}, build(true))
	got := fx.send(t, build(false)(t))
	if got.status != http.StatusOK || got.receipt.Status != "accepted" || got.receipt.Seq != 3 {
		t.Fatalf("control: the same request with the low-S signature answered %d %s", got.status, got.raw)
	}
}

// joinEve makes eve of the attacker node a participant of the target's
// conference, through the attacker node's own federation.
func (fx *secFixture) joinEve(t *testing.T) localuser.User {
	t.Helper()
	ctx := context.Background()
	eve, _ := nodetest.User(t, fx.attacker, "eve", "Eve")
	if _, _, err := fx.attacker.Federation().Answer(ctx, eve, fx.conference, true); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, secWait, "the attacker node's acceptance at the target", func() bool {
		n, err := fx.target.Store().GetConferenceNode(ctx, fx.conference, fx.attacker.DID())
		return err == nil && n.State == store.NodeAccepted
	})
	if _, _, err := fx.attacker.Federation().Join(ctx, eve, fx.conference); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, secWait, "eve's join at the target", func() bool {
		return fx.target.Federation().MayParticipate(ctx, fx.conference, "eve@"+fx.attacker.DID()) == nil
	})
	fx.waitDelivered(t)
	return eve
}

// signalCollector keeps the signals a node hands its clients.
type signalCollector struct {
	mu  sync.Mutex
	got []federation.Signal
}

func collectSignals(n *nodetest.Node) *signalCollector {
	c := &signalCollector{}
	n.OnSignal(func(s federation.Signal) {
		c.mu.Lock()
		c.got = append(c.got, s)
		c.mu.Unlock()
	})
	return c
}

func (c *signalCollector) texts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range c.got {
		out = append(out, s.Text)
	}
	return out
}

// TestSecuritySignalRules: a signal meant to live over 2 minutes is refused
// (spec §5.1), and so is a message whose sender is another node (403, spec
// §4.2).
func TestSecuritySignalRules(t *testing.T) {
	fx := newSecFixture(t)
	a := fx.attacker
	fx.joinEve(t)
	signals := collectSignals(fx.target)
	chat := func(text string, lifetime time.Duration) federation.Payload {
		p := fx.payload(a, federation.TypeSignal, `{"kind":"chat","text":"`+text+`"}`)
		p.Expires = p.Created + lifetime.Milliseconds()
		return p
	}
	fx.attack(t, "signal living 3 minutes", secRefusal{400, "bad_request", "over 2m0s"}, func(t *testing.T) *http.Request {
		return secSigned(t, a, http.MethodPost, fx.inbox, fx.envelope(t, a, chat("late", 3*time.Minute)), time.Now())
	})
	fx.attack(t, "sender that is another node's DID", secRefusal{403, "forbidden", "sender " + fx.other.DID() + " is another node than origin " + a.DID()}, func(t *testing.T) *http.Request {
		p := fx.payload(a, federation.TypeAccept, `{}`)
		p.Sender = fx.other.DID()
		return secSigned(t, a, http.MethodPost, fx.inbox, fx.envelope(t, a, p), time.Now())
	})
	if got := signals.texts(); len(got) != 0 {
		t.Fatalf("the target handed refused signals to its clients: %q", got)
	}
	// The control: the same chat living 2 minutes is accepted and shown.
	got := fx.deliver(t, a, fx.inbox, fx.envelope(t, a, chat("on time", 2*time.Minute)))
	if got.status != http.StatusOK || got.receipt.Status != "accepted" {
		t.Fatalf("control: a 2-minute signal answered %d %s", got.status, got.raw)
	}
	if got := signals.texts(); len(got) != 1 || got[0] != "on time" {
		t.Fatalf("signals handed to the target's clients: %q, want [on time]", got)
	}
}

// TestSecurityRelayAfterEnd: the host of a conference that ended relays a
// signal anyway; the member refuses it with 410 (spec §5.1, §6.1).
func TestSecurityRelayAfterEnd(t *testing.T) {
	fx := newSecFixture(t)
	a := fx.attacker
	ctx := context.Background()
	hugo, _ := nodetest.User(t, a, "hugo", "Hugo")
	conf := invitedConference(t, a, hugo, "Hosted by the agency", fx.target)
	nodetest.Eventually(t, secWait, "the target's replica", func() bool {
		c, err := fx.target.Store().GetConference(ctx, conf.ID)
		return err == nil && c.HeadSeq == 2
	})
	signals := collectSignals(fx.target)
	relay := func(t *testing.T, text string) []byte {
		now := time.Now()
		inner, err := federation.MarshalPayload(federation.Payload{
			ID: federation.NewMessageID(), Type: federation.TypeSignal, Origin: a.DID(), Destination: a.DID(),
			Sender: "hugo@" + a.DID(), Conference: conf.ID, Created: now.UnixMilli(), Expires: now.Add(time.Minute).UnixMilli(),
			Content: json.RawMessage(`{"kind":"chat","text":"` + text + `"}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		env, err := federation.Seal(a.DID(), a.Keys(), inner)
		if err != nil {
			t.Fatal(err)
		}
		content, err := json.Marshal(federation.RelayContent{Signal: env})
		if err != nil {
			t.Fatal(err)
		}
		p := fx.payload(a, federation.TypeRelay, string(content))
		p.Conference, p.Sender, p.Expires = conf.ID, a.DID(), p.Created+time.Minute.Milliseconds()
		return fx.envelope(t, a, p)
	}
	// The control, while the conference runs.
	got := fx.deliver(t, a, fx.inbox, relay(t, "during"))
	if got.status != http.StatusOK || got.receipt.Status != "accepted" {
		t.Fatalf("control: relay during the conference answered %d %s", got.status, got.raw)
	}
	if _, err := a.Federation().Moderate(ctx, hugo, conf.ID, federation.TypeEnd, ""); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, secWait, "the end at the target", func() bool {
		c, err := fx.target.Store().GetConference(ctx, conf.ID)
		return err == nil && c.Ended
	})
	fx.attack(t, "relay after the end", secRefusal{410, "gone", "conference " + conf.ID + " has ended"}, func(t *testing.T) *http.Request {
		return secSigned(t, a, http.MethodPost, fx.inbox, relay(t, "after"), time.Now())
	})
	if got := signals.texts(); len(got) != 1 || got[0] != "during" {
		t.Fatalf("signals handed to the target's clients: %q, want [during]", got)
	}
}

// secHighS turns a low-S DER signature into its high-S twin (r, n−s), which
// verifies just as well.
func secHighS(t *testing.T, der []byte) []byte {
	t.Helper()
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		t.Fatal(err)
	}
	rs.S.Sub(elliptic.P256().Params().N, rs.S)
	out, err := asn1.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
