package federation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/config"
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
func (fx *secFixture) joinEve(t *testing.T) federation.LocalUser {
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
	conf, err := a.Federation().CreateConference(ctx, hugo, "Hosted by the agency", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Federation().Invite(ctx, hugo, conf.ID, fx.target.DID(), nil); err != nil {
		t.Fatal(err)
	}
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

// gatedBody is a request body of which only the first KiB is sent until
// release: a receiver that reads the body before answering waits for it.
type gatedBody struct {
	r        *io.PipeReader
	released atomic.Bool
	release  func()
}

func newGatedBody(body []byte) *gatedBody {
	pr, pw := io.Pipe()
	g := &gatedBody{r: pr}
	done := make(chan struct{})
	var once sync.Once
	g.release = func() { once.Do(func() { close(done) }) }
	go func() {
		if _, err := pw.Write(body[:1024]); err != nil {
			return
		}
		<-done
		g.released.Store(true)
		_, err := pw.Write(body[1024:])
		pw.CloseWithError(err)
	}()
	return g
}

// sendGated sends req with body gated: the rest of the body is released
// after hold, or at once when the answer came. It reports whether the
// answer came while the body was still held back.
func (fx *secFixture) sendGated(t *testing.T, req *http.Request, body []byte, hold time.Duration) (rawAnswer, bool) {
	t.Helper()
	g := newGatedBody(body)
	defer g.release()
	req.Body = io.NopCloser(g.r)
	req.ContentLength = int64(len(body))
	req.GetBody = nil
	timer := time.AfterFunc(hold, g.release)
	defer timer.Stop()
	a := fx.sendRaw(t, req)
	return a, !g.released.Load()
}

// megabyte is env padded with spaces to exactly 1 MiB, the largest body a
// node takes: JSON allows the trailing spaces, so only its sender and
// signature can get it refused.
func megabyte(env []byte) []byte {
	return append(bytes.Clone(env), bytes.Repeat([]byte(" "), 1<<20-len(env))...)
}

// TestSecurityStrangerBodyNotRead: an untrusted sender is refused on its
// headers alone, before its body is read (spec §3.2, §3.4): the target
// answers while all but the first KiB of its 1 MiB body is held back.
func TestSecurityStrangerBodyNotRead(t *testing.T) {
	fx := newSecFixture(t)
	o := fx.outsider
	p := fx.payload(o, federation.TypeAccept, `{}`)
	body := megabyte(fx.envelope(t, o, p))
	before := snapshot(t, fx.target, fx.sent...)
	got, early := fx.sendGated(t, secSigned(t, o, http.MethodPost, fx.inbox, body, time.Now()), body, 5*time.Second)
	if !early {
		t.Errorf("the target answered only after the whole body was sent: it read the stranger's body")
	}
	want := `{"error":{"code":"forbidden","message":"` + o.DID() + ` is not on the trust list"}}`
	if got.status != http.StatusForbidden || string(got.body) != want {
		t.Errorf("stranger answered %d %s, want 403 %s", got.status, got.body, want)
	}
	if after := snapshot(t, fx.target, fx.sent...); after != before {
		t.Errorf("the stranger's request changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestSecurityPeerRateLimit: a trusted peer over its rate is answered 429
// with Retry-After, before its body is read, and nothing it sent is applied.
func TestSecurityPeerRateLimit(t *testing.T) {
	fx := newSecFixtureWith(t, func(c *config.Config) {
		c.Federation.PeerMessagesPerSecond = 1
		c.Federation.PeerBurst = 2
	})
	a := fx.attacker
	roster := fx.target.FederationEndpoint() + "/conferences/" + fx.conference + "/roster"
	// A message the target refuses after reading it (wrong destination), so
	// that one admitted by a token refilled on a slow machine changes nothing.
	p := fx.payload(a, federation.TypeAccept, `{}`)
	p.Destination = fx.other.DID()
	body := megabyte(fx.envelope(t, a, p))
	before := snapshot(t, fx.target, fx.sent...)
	const rounds = 5
	for round := 1; ; round++ {
		// Spend the bucket with signed GETs of the roster.
		admitted := 0
		var refused rawAnswer
		for range 20 {
			got := fx.sendRaw(t, secSigned(t, a, http.MethodGet, roster, nil, time.Now()))
			if got.status != http.StatusOK {
				refused = got
				break
			}
			admitted++
		}
		if round == 1 && admitted < 2 {
			t.Fatalf("only %d requests admitted before a refusal, want the burst of 2", admitted)
		}
		wantBody := `{"error":{"code":"too_many_requests","message":"` + a.DID() + ` is over its 1 requests per second"}}`
		if refused.status != http.StatusTooManyRequests || string(refused.body) != wantBody || refused.header.Get("Retry-After") != "1" {
			t.Fatalf("over the rate: %d Retry-After %q %s, want 429 Retry-After 1 %s", refused.status, refused.header.Get("Retry-After"), refused.body, wantBody)
		}
		// At once, a 1 MiB POST: refused before its body is read.
		got, early := fx.sendGated(t, secSigned(t, a, http.MethodPost, fx.inbox, body, time.Now()), body, 5*time.Second)
		if got.status == http.StatusForbidden && round < rounds {
			continue // a token came back in between: the machine is slow
		}
		if got.status != http.StatusTooManyRequests || got.header.Get("Retry-After") != "1" || !early {
			t.Fatalf("POST over the rate: %d Retry-After %q, answered before the body was sent: %t (%s)", got.status, got.header.Get("Retry-After"), early, got.body)
		}
		break
	}
	if after := snapshot(t, fx.target, fx.sent...); after != before {
		t.Errorf("requests over the rate changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestOutboxHonoursTooManyRequests: a node whose messages are answered 429
// waits for the Retry-After without counting a failed attempt, and delivers
// everything in order, failing none (spec §8).
func TestOutboxHonoursTooManyRequests(t *testing.T) {
	fx := newSecFixtureWith(t, func(c *config.Config) {
		c.Federation.PeerMessagesPerSecond = 1
		c.Federation.PeerBurst = 1
	})
	a := fx.attacker
	ctx := context.Background()
	eve := fx.joinEve(t)
	signals := collectSignals(fx.target)
	want := []string{"one", "two", "three", "four"}
	for _, text := range want {
		if _, err := a.Federation().SendSignal(ctx, eve, fx.conference, federation.SignalContent{Kind: federation.SignalChat, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	// A message refused with 429 waits at least the Retry-After (1 s) from
	// when it was written, and the refusal is not counted as an attempt.
	var seen store.OutboxMessage
	nodetest.Eventually(t, secWait, "a 429 in the attacker's outbox", func() bool {
		pending, err := a.Store().ListOutbox(ctx, fx.target.DID(), store.OutboxPending)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range pending {
			if strings.HasPrefix(m.LastError, "429 too_many_requests") {
				seen = m
				return true
			}
		}
		return false
	})
	if seen.Attempts != 0 || seen.NextAttempt.Sub(seen.CreatedAt) < time.Second {
		t.Errorf("after a 429: attempts %d, next attempt %s after it was written; want 0 and at least the Retry-After of 1s", seen.Attempts, seen.NextAttempt.Sub(seen.CreatedAt))
	}
	nodetest.Eventually(t, 30*time.Second, "every chat line at the target", func() bool {
		return len(signals.texts()) == len(want)
	})
	if got := signals.texts(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("the target received %q, want %q", got, want)
	}
	// The last receipt is recorded just after the target applied the line.
	nodetest.Eventually(t, secWait, "the attacker's outbox to drain", func() bool {
		n, err := a.Store().ListOutbox(ctx, fx.target.DID(), store.OutboxPending)
		return err == nil && len(n) == 0
	})
	for _, state := range []string{store.OutboxFailed, store.OutboxExpired} {
		if ms, err := a.Store().ListOutbox(ctx, fx.target.DID(), state); err != nil || len(ms) != 0 {
			t.Errorf("the attacker's outbox holds %d %s messages (%v), want none", len(ms), state, err)
		}
	}
}

// TestSecurityPeerQuotas: a host may hold only so many open invitations and
// conferences with a node; the next one is answered 429 with a Retry-After
// of 60 s, which the host's outbox keeps for later, and nothing of it is
// stored (spec §3.4).
func TestSecurityPeerQuotas(t *testing.T) {
	ctx := context.Background()
	f := nodetest.New(t)
	host := f.Start(t, "Agency", nil)
	invitations := f.Start(t, "Ministry", func(c *config.Config) { c.Federation.PeerOpenInvitations = 2 })
	conferences := f.Start(t, "City", func(c *config.Config) { c.Federation.PeerConferences = 2 })
	nodetest.Trust(t, host, invitations, conferences)
	hugo, _ := nodetest.User(t, host, "hugo", "Hugo")

	invite := func(target *nodetest.Node, title string) string {
		t.Helper()
		conf, err := host.Federation().CreateConference(ctx, hugo, title, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := host.Federation().Invite(ctx, hugo, conf.ID, target.DID(), nil); err != nil {
			t.Fatal(err)
		}
		return conf.ID
	}
	replicated := func(target *nodetest.Node, id string) {
		t.Helper()
		nodetest.Eventually(t, secWait, "the replica of "+id+" at "+target.Name(), func() bool {
			c, err := target.Store().GetConference(ctx, id)
			return err == nil && c.HeadSeq == 2
		})
	}
	// refused waits for the host's outbox to hold its log for id refused
	// with 429 and kept pending for 60 s, and checks the target has none of it.
	refused := func(target *nodetest.Node, id, reason string, before string) {
		t.Helper()
		nodetest.Eventually(t, secWait, "the 429 for "+id, func() bool {
			pending, err := host.Store().ListOutbox(ctx, target.DID(), store.OutboxPending)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range pending {
				if strings.HasPrefix(m.LastError, "429 too_many_requests: ") {
					if !strings.Contains(m.LastError, reason) {
						t.Fatalf("429 for %q, want %q", m.LastError, reason)
					}
					if m.Attempts != 0 || m.NextAttempt.Sub(time.Now()) < 50*time.Second {
						t.Fatalf("after the 429: attempts %d, next in %s; want 0 and about 60 s", m.Attempts, time.Until(m.NextAttempt))
					}
					return true
				}
			}
			return false
		})
		if _, err := target.Store().GetConference(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s holds the refused conference %s: %v", target.Name(), id, err)
		}
		if after := snapshot(t, target); after != before {
			t.Errorf("the refused invitation changed %s's store:\nbefore:\n%s\nafter:\n%s", target.Name(), before, after)
		}
		if failed, err := host.Store().ListOutbox(ctx, target.DID(), store.OutboxFailed); err != nil || len(failed) != 0 {
			t.Errorf("the host failed %d messages for good (%v), want none", len(failed), err)
		}
	}

	// Two unanswered invitations fill the first node's quota.
	replicated(invitations, invite(invitations, "One"))
	replicated(invitations, invite(invitations, "Two"))
	before := snapshot(t, invitations)
	refused(invitations, invite(invitations, "Three"), "already has 2 open invitations to this node (limit 2)", before)

	// Two accepted conferences fill the second node's.
	bob, _ := nodetest.User(t, conferences, "bob", "Bob")
	for _, title := range []string{"Four", "Five"} {
		id := invite(conferences, title)
		replicated(conferences, id)
		if _, _, err := conferences.Federation().Answer(ctx, bob, id, true); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, secWait, "the acceptances at the host", func() bool {
		n, err := conferences.Store().CountHostedConferences(ctx, host.DID(), conferences.DID())
		return err == nil && n == store.HostedCount{Live: 2, Invited: 0}
	})
	before = snapshot(t, conferences)
	refused(conferences, invite(conferences, "Six"), "already hosts 2 conferences with this node (limit 2)", before)
}
