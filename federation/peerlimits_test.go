package federation_test

import (
	"bytes"
	"context"
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

// These tests check that a stranger costs a node no more than its headers,
// and hold each trusted peer to its limits (spec §3.4, §8).

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
	if got.status != http.StatusForbidden || withoutRequestID(t, got) != want {
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
		if refused.status != http.StatusTooManyRequests || withoutRequestID(t, refused) != wantBody || refused.header.Get("Retry-After") != "1" {
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

// withoutRequestID returns an error answer's body without the request id
// that every error carries (spec/federation.md §3.3), after checking that it
// is the one of the X-Request-Id header.
func withoutRequestID(t *testing.T, a rawAnswer) string {
	t.Helper()
	id := a.header.Get("X-Request-Id")
	field := `,"request_id":"` + id + `"`
	if id == "" || !strings.Contains(string(a.body), field) {
		t.Fatalf("error body %s does not carry the request id %q of its X-Request-Id header", a.body, id)
	}
	return strings.Replace(string(a.body), field, "", 1)
}
