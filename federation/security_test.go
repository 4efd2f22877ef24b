package federation_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/internal/testwait"
	"github.com/entente-org/entente/store"
)

// The security suite attacks a real running node through its real inbox,
// over HTTPS, with requests crafted by other real nodes whose DID documents
// resolve for real. Every attack must be refused with its exact status and
// code (spec §3.2, §4.3, §6, §9) and leave the target's store as it was.

// msgKey names a message in a node's inbox dedupe table.
type msgKey struct{ origin, id string }

// errProbeRollback ends the transaction of inboxHolds so that the probe
// stores nothing.
var errProbeRollback = errors.New("inbox probe rolled back")

// inboxHolds reports whether n's inbox dedupe table has an entry for k. It
// offers the key with a hash no real payload has, in a transaction that is
// always rolled back: RecordInbound answers a conflict exactly when an entry
// exists.
func inboxHolds(t *testing.T, n *nodetest.Node, k msgKey) bool {
	t.Helper()
	ctx := context.Background()
	held := false
	err := n.Store().InTx(ctx, func(tx store.Tx) error {
		_, err := tx.RecordInbound(ctx, k.origin, k.id, "inbox-probe", time.Now())
		if errors.Is(err, store.ErrConflict) {
			held = true
		} else if err != nil {
			return err
		}
		return errProbeRollback
	})
	if !errors.Is(err, errProbeRollback) {
		t.Fatalf("inbox probe of %s/%s: %v", k.origin, k.id, err)
	}
	return held
}

// snapshot serialises what a federation request could change in n's store:
// conferences, their records, nodes and participants, the outbox, and the
// inbox entries of the messages probed. Delivery bookkeeping (attempts,
// state) is left out: the outbox worker changes it on its own.
func snapshot(t *testing.T, n *nodetest.Node, probes ...msgKey) string {
	t.Helper()
	ctx := context.Background()
	s := n.Store()
	var b strings.Builder
	confs, err := s.ListConferences(ctx)
	if err != nil {
		t.Fatalf("snapshot: conferences: %v", err)
	}
	for _, c := range confs {
		fmt.Fprintf(&b, "conference %+v\n", c)
		recs, err := s.ListRecords(ctx, c.ID, 0, 0)
		if err != nil {
			t.Fatalf("snapshot: records of %s: %v", c.ID, err)
		}
		for _, r := range recs {
			fmt.Fprintf(&b, "  record %d %s prev=%s event=%s %s by %s\n", r.Seq, r.Hash, r.Prev, r.EventID, r.EventType, r.Sender)
		}
		nodes, err := s.ListConferenceNodes(ctx, c.ID)
		if err != nil {
			t.Fatalf("snapshot: nodes of %s: %v", c.ID, err)
		}
		for _, cn := range nodes {
			fmt.Fprintf(&b, "  node %+v\n", cn)
		}
		parts, err := s.ListParticipants(ctx, c.ID)
		if err != nil {
			t.Fatalf("snapshot: participants of %s: %v", c.ID, err)
		}
		for _, p := range parts {
			fmt.Fprintf(&b, "  participant %+v\n", p)
		}
	}
	out, err := s.ListOutbox(ctx, "", "")
	if err != nil {
		t.Fatalf("snapshot: outbox: %v", err)
	}
	for _, m := range out {
		sum := sha256.Sum256(m.Body)
		fmt.Fprintf(&b, "outbox %d %s to %s body %x\n", m.ID, m.MessageID, m.Destination, sum[:8])
	}
	for _, k := range probes {
		fmt.Fprintf(&b, "inbox %s %s held=%t\n", k.origin, k.id, inboxHolds(t, n, k))
	}
	return b.String()
}

// secFixture is a target node hosting a conference to which the attacker
// node is invited; other is a second trusted node, never invited; outsider
// is not on the target's trust list.
type secFixture struct {
	f                *nodetest.Federation
	target, attacker *nodetest.Node
	other, outsider  *nodetest.Node
	host             localuser.User // a moderator at the target
	conference       string
	inbox            string // the target's inbox URL
	web              *http.Client
	sent             []msgKey // every message crafted, probed by each snapshot
}

const secWait = 10 * time.Second

func newSecFixture(t *testing.T) *secFixture {
	t.Helper()
	return newSecFixtureWith(t, nil)
}

// newSecFixtureWith is newSecFixture with the target's configuration
// changed by edit.
func newSecFixtureWith(t *testing.T, edit func(*config.Config)) *secFixture {
	t.Helper()
	f := nodetest.New(t)
	fx := &secFixture{
		f:        f,
		target:   f.Start(t, "Ministry", edit),
		attacker: f.Start(t, "Agency", nil),
		other:    f.Start(t, "City", nil),
		outsider: f.Start(t, "Stranger", nil),
		web:      f.Client(),
	}
	nodetest.Trust(t, fx.target, fx.attacker, fx.other)
	// The outsider trusts the target, but not the other way round.
	if err := (federation.TrustList{Store: fx.outsider.Store()}).Add(context.Background(), store.Peer{DID: fx.target.DID(), Name: "Ministry", AddedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	fx.inbox = fx.target.FederationEndpoint() + "/inbox"
	fx.host, _ = nodetest.User(t, fx.target, "alice", "Alice")
	conf := invitedConference(t, fx.target, fx.host, "Security review", fx.attacker)
	fx.conference = conf.ID
	fx.waitDelivered(t)
	return fx
}

// waitDelivered waits until the target's outbox is idle, so snapshots do
// not race its deliveries.
func (fx *secFixture) waitDelivered(t *testing.T) {
	t.Helper()
	nodetest.Eventually(t, secWait, "the target's outbox to drain", func() bool {
		n, err := fx.target.Store().CountOutbox(context.Background(), store.OutboxPending)
		return err == nil && n == 0
	})
}

// payload is a well-formed message from "eve" of node from to the target.
func (fx *secFixture) payload(from *nodetest.Node, typ, content string) federation.Payload {
	now := time.Now()
	return federation.Payload{
		ID: federation.NewMessageID(), Type: typ, Origin: from.DID(), Destination: fx.target.DID(),
		Sender: "eve@" + from.DID(), Conference: fx.conference,
		Created: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli(), Content: json.RawMessage(content),
	}
}

// seal signs payload bytes with by's real key, as they are, and returns the
// envelope's JSON. The message is remembered for every later snapshot.
func (fx *secFixture) seal(t *testing.T, by *nodetest.Node, key msgKey, payload []byte) []byte {
	t.Helper()
	env, err := federation.Seal(by.DID(), by.Keys(), payload)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	fx.sent = append(fx.sent, key)
	return body
}

// envelope seals p with the key of its origin node. The payload is encoded
// without MarshalPayload's checks, so that invalid headers can be sent.
func (fx *secFixture) envelope(t *testing.T, by *nodetest.Node, p federation.Payload) []byte {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return fx.seal(t, by, msgKey{p.Origin, p.ID}, b)
}

// accept is the attacker's conference.accept: the message every transport
// attack carries, which the target would apply if it let it through.
func (fx *secFixture) accept(t *testing.T) []byte {
	t.Helper()
	return fx.envelope(t, fx.attacker, fx.payload(fx.attacker, federation.TypeAccept, `{}`))
}

func secRequest(t *testing.T, method, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func secKey(t *testing.T, n *nodetest.Node) (string, *ecdsa.PrivateKey) {
	t.Helper()
	frag, priv, err := n.Keys().CurrentECDSA()
	if err != nil {
		t.Fatal(err)
	}
	return n.DID() + "#" + frag, priv
}

// signed is a request signed by SignRequest with by's current key, Date at
// date.
func secSigned(t *testing.T, by *nodetest.Node, method, url string, body []byte, date time.Time) *http.Request {
	t.Helper()
	req := secRequest(t, method, url, body)
	keyID, priv := secKey(t, by)
	if err := federation.SignRequest(req, body, keyID, priv, date); err != nil {
		t.Fatal(err)
	}
	return req
}

// moved is a copy of req, with its headers and so its signature, sent as
// another method, to another URL or with another body.
func secMoved(t *testing.T, req *http.Request, method, url string, body []byte) *http.Request {
	t.Helper()
	out := secRequest(t, method, url, body)
	out.Header = req.Header.Clone()
	return out
}

// secRawSignature makes a Signature header by hand, for what SignRequest never
// produces.
type secRawSignature struct {
	keyID      string
	algorithm  string   // "" omits the parameter
	headers    []string // nil means all of spec §3.1
	omitDigest bool     // send no Digest header at all
	mac        []byte   // when set, HMAC-SHA256 under this secret instead of ECDSA
	highS      bool     // the ECDSA signature in its high-S form, (r, n−s)
}

var secSignedHeaders = []string{"(request-target)", "(created)", "(expires)", "host", "date", "digest"}

func secSignRaw(t *testing.T, req *http.Request, body []byte, priv *ecdsa.PrivateKey, rs secRawSignature) {
	t.Helper()
	now := time.Now()
	req.Header.Set("Date", now.UTC().Format(http.TimeFormat))
	if !rs.omitDigest {
		sum := sha256.Sum256(body)
		req.Header.Set("Digest", "SHA-256="+base64.StdEncoding.EncodeToString(sum[:]))
	}
	if rs.headers == nil {
		rs.headers = secSignedHeaders
	}
	created, expires := now.Unix(), now.Unix()+300
	lines := make([]string, 0, len(rs.headers))
	for _, h := range rs.headers {
		var v string
		switch h {
		case "(request-target)":
			v = strings.ToLower(req.Method) + " " + req.URL.RequestURI()
		case "(created)":
			v = strconv.FormatInt(created, 10)
		case "(expires)":
			v = strconv.FormatInt(expires, 10)
		case "host":
			v = req.URL.Host
		default:
			v = req.Header.Get(h)
		}
		lines = append(lines, h+": "+v)
	}
	str := []byte(strings.Join(lines, "\n"))
	var sig []byte
	if rs.mac != nil {
		m := hmac.New(sha256.New, rs.mac)
		m.Write(str)
		sig = m.Sum(nil)
	} else {
		digest := sha256.Sum256(str)
		var err error
		if sig, err = ecdsa.SignASN1(rand.Reader, priv, digest[:]); err != nil {
			t.Fatal(err)
		}
		if sig, err = federation.LowS(sig); err != nil {
			t.Fatal(err)
		}
		if rs.highS {
			sig = secHighS(t, sig)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `keyId="%s",`, rs.keyID)
	if rs.algorithm != "" {
		fmt.Fprintf(&b, `algorithm="%s",`, rs.algorithm)
	}
	fmt.Fprintf(&b, `created=%d,expires=%d,headers="%s",signature="%s"`, created, expires, strings.Join(rs.headers, " "), base64.StdEncoding.EncodeToString(sig))
	req.Header.Set("Signature", b.String())
}

// secAnswer is what the target said: the status, and for a refusal its error
// code and message, for a success the receipt it signed.
type secAnswer struct {
	status  int
	code    string
	message string
	receipt federation.ReceiptContent
	raw     string
}

func (fx *secFixture) send(t *testing.T, req *http.Request) secAnswer {
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
	return fx.parse(t, resp.StatusCode, b)
}

// deliver sends body as a well-formed signed request from by, as an outbox
// would.
func (fx *secFixture) deliver(t *testing.T, by *nodetest.Node, url string, body []byte) secAnswer {
	t.Helper()
	c := &federation.Client{HTTP: fx.web, DID: by.DID(), Keys: by.Keys(), Now: time.Now}
	status, b, err := c.Do(context.Background(), http.MethodPost, url, body)
	if err != nil {
		t.Fatalf("deliver to %s: %v", url, err)
	}
	return fx.parse(t, status, b)
}

func (fx *secFixture) parse(t *testing.T, status int, b []byte) secAnswer {
	t.Helper()
	a := secAnswer{status: status, raw: string(b)}
	if status != http.StatusOK {
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Fatalf("status %d with a body that is not an error object: %q", status, b)
		}
		a.code, a.message = eb.Error.Code, eb.Error.Message
		return a
	}
	env, err := federation.DecodeEnvelope(b)
	if err != nil {
		t.Fatalf("200 with a body that is not an envelope: %v", err)
	}
	pb, err := env.PayloadBytes()
	if err != nil {
		t.Fatal(err)
	}
	p, err := federation.DecodePayload(pb)
	if err != nil {
		t.Fatal(err)
	}
	if p.Type != federation.TypeReceipt || p.Origin != fx.target.DID() || env.KeyDID() != fx.target.DID() {
		t.Fatalf("answer is a %s from %s signed by %s, want a receipt from the target", p.Type, p.Origin, env.KeyDID())
	}
	if err := json.Unmarshal(p.Content, &a.receipt); err != nil {
		t.Fatal(err)
	}
	return a
}

// secRefusal is what an attack must get.
type secRefusal struct {
	status int
	code   string
	reason string // part of the message: the request was refused for this reason
}

func (r secRefusal) check(t *testing.T, what string, got secAnswer) {
	t.Helper()
	if got.status != r.status || got.code != r.code || !strings.Contains(got.message, r.reason) {
		t.Errorf("%s: answered %d %q %q, want %d %q with a message containing %q (body %s)", what, got.status, got.code, got.message, r.status, r.code, r.reason, got.raw)
	}
}

// attack builds the request, sends it, and checks the refusal and that the
// target's store did not change.
func (fx *secFixture) attack(t *testing.T, what string, want secRefusal, build func(t *testing.T) *http.Request) {
	t.Helper()
	req := build(t)
	before := snapshot(t, fx.target, fx.sent...)
	want.check(t, what, fx.send(t, req))
	if after := snapshot(t, fx.target, fx.sent...); after != before {
		t.Errorf("%s: the target's store changed:\nbefore:\n%s\nafter:\n%s", what, before, after)
	}
}

func TestSecurityTransport(t *testing.T) {
	fx := newSecFixture(t)
	a := fx.attacker
	confURL := fx.target.FederationEndpoint() + "/conferences/" + fx.conference

	// Every request is signed with the attacker's real key and carries a
	// message the target would apply; only what each case names is wrong.
	withSig := func(edit func(sig string) string) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			req := secSigned(t, a, http.MethodPost, fx.inbox, fx.accept(t), time.Now())
			if v := edit(req.Header.Get("Signature")); v == "" {
				req.Header.Del("Signature")
			} else {
				req.Header.Set("Signature", v)
			}
			return req
		}
	}
	raw := func(rs secRawSignature) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			body := fx.accept(t)
			req := secRequest(t, http.MethodPost, fx.inbox, body)
			keyID, priv := secKey(t, a)
			if rs.keyID == "" {
				rs.keyID = keyID
			}
			secSignRaw(t, req, body, priv, rs)
			return req
		}
	}
	without := func(drop string) []string {
		var out []string
		for _, h := range secSignedHeaders {
			if h != drop {
				out = append(out, h)
			}
		}
		return out
	}
	unauthorized := func(reason string) secRefusal { return secRefusal{401, "unauthorized", reason} }

	cases := []struct {
		name  string
		want  secRefusal
		build func(t *testing.T) *http.Request
	}{
		{"missing Signature header", unauthorized("expected one Signature header, got 0"),
			withSig(func(string) string { return "" })},
		{"malformed Signature header: not parameters", unauthorized("Signature header"),
			withSig(func(string) string { return "Signature garbage" })},
		{"malformed Signature header: keyId unquoted", unauthorized(`parameter "keyId" must be quoted`),
			withSig(func(s string) string { return strings.Replace(s, `keyId="`, `keyId=`, 1) })},
		{"malformed Signature header: signature not base64", unauthorized("signature is not base64"),
			withSig(func(s string) string { return s[:strings.Index(s, `signature="`)] + `signature="@@@"` })},
		{"malformed Signature header: parameter twice", unauthorized(`parameter "keyId" given twice`),
			withSig(func(s string) string { return s + `,keyId="did:web:elsewhere#k-1"` })},

		{"signature covering the date only", unauthorized("signature does not cover (request-target)"),
			raw(secRawSignature{headers: []string{"date"}})},
		{"signature covering no digest, and no Digest header", unauthorized("signature does not cover digest"),
			raw(secRawSignature{headers: without("digest"), omitDigest: true})},
		{"signature covering no host", unauthorized("signature does not cover host"),
			raw(secRawSignature{headers: without("host")})},
		{"Digest header present but not signed", unauthorized("signature does not cover digest"),
			raw(secRawSignature{headers: without("digest")})},

		{"valid signature replayed on another path", unauthorized("signature does not verify"),
			func(t *testing.T) *http.Request {
				body := fx.accept(t)
				return secMoved(t, secSigned(t, a, http.MethodPost, confURL+"/records", body, time.Now()), http.MethodPost, fx.inbox, body)
			}},
		{"valid signature replayed with another query", unauthorized("signature does not verify"),
			func(t *testing.T) *http.Request {
				body := fx.accept(t)
				return secMoved(t, secSigned(t, a, http.MethodPost, fx.inbox, body, time.Now()), http.MethodPost, fx.inbox+"?after=0", body)
			}},
		{"valid signature replayed with another method", unauthorized("signature does not verify"),
			func(t *testing.T) *http.Request {
				body := fx.accept(t)
				return secMoved(t, secSigned(t, a, http.MethodPut, fx.inbox, body, time.Now()), http.MethodPost, fx.inbox, body)
			}},
		{"valid signature replayed with another Host header", unauthorized(`request signed for host "localhost:`),
			func(t *testing.T) *http.Request {
				req := secSigned(t, a, http.MethodPost, fx.inbox, fx.accept(t), time.Now())
				// The certificate also names localhost: the request reaches the
				// same node under another name.
				req.Host = strings.Replace(req.URL.Host, "127.0.0.1", "localhost", 1)
				return req
			}},
		{"body changed while the Digest stays", unauthorized("Digest does not match the body"),
			func(t *testing.T) *http.Request {
				req := secSigned(t, a, http.MethodPost, fx.inbox, fx.accept(t), time.Now())
				return secMoved(t, req, http.MethodPost, fx.inbox, fx.accept(t))
			}},

		{"Date 10 minutes old", unauthorized("away from our clock"),
			func(t *testing.T) *http.Request {
				return secSigned(t, a, http.MethodPost, fx.inbox, fx.accept(t), time.Now().Add(-10*time.Minute))
			}},
		{"Date 10 minutes in the future", unauthorized("away from our clock"),
			func(t *testing.T) *http.Request {
				return secSigned(t, a, http.MethodPost, fx.inbox, fx.accept(t), time.Now().Add(10*time.Minute))
			}},

		{"keyId of another DID than the envelope's origin", unauthorized("envelope signed by " + a.DID() + " but request by " + fx.other.DID()),
			func(t *testing.T) *http.Request {
				return secSigned(t, fx.other, http.MethodPost, fx.inbox, fx.accept(t), time.Now())
			}},
		{"unknown key of a trusted node", unauthorized("is not a key of " + a.DID()),
			raw(secRawSignature{keyID: a.DID() + "#k-unknown1"})},
		{"key of a node not on the trust list", secRefusal{403, "forbidden", fx.outsider.DID() + " is not on the trust list"},
			func(t *testing.T) *http.Request {
				p := fx.payload(fx.outsider, federation.TypeAccept, `{}`)
				return secSigned(t, fx.outsider, http.MethodPost, fx.inbox, fx.envelope(t, fx.outsider, p), time.Now())
			}},
		{"algorithm confusion: hmac-sha256 keyed with the public key", unauthorized(`algorithm "hmac-sha256" refused`),
			func(t *testing.T) *http.Request {
				pub, err := atcrypto.ParsePublicMultibase(a.Keys().Keys(time.Now())[0].PublicMultibase)
				if err != nil {
					t.Fatal(err)
				}
				return raw(secRawSignature{algorithm: "hmac-sha256", mac: pub.Bytes()})(t)
			}},
		{"algorithm confusion: rsa-sha256 claimed for a P-256 key", unauthorized(`algorithm "rsa-sha256" refused`),
			raw(secRawSignature{algorithm: "rsa-sha256"})},

		{"destination that is not this node", secRefusal{403, "forbidden", "message for " + fx.other.DID() + ", not this node"},
			func(t *testing.T) *http.Request {
				p := fx.payload(a, federation.TypeAccept, `{}`)
				p.Destination = fx.other.DID()
				return secSigned(t, a, http.MethodPost, fx.inbox, fx.envelope(t, a, p), time.Now())
			}},
		{"sender of a foreign domain", secRefusal{403, "forbidden", "sender mallory@did:web:elsewhere is not of origin " + a.DID()},
			func(t *testing.T) *http.Request {
				p := fx.payload(a, federation.TypeAccept, `{}`)
				p.Sender = "mallory@did:web:elsewhere"
				return secSigned(t, a, http.MethodPost, fx.inbox, fx.envelope(t, a, p), time.Now())
			}},
	}
	for _, c := range cases {
		fx.attack(t, c.name, c.want, c.build)
	}
	if t.Failed() {
		return
	}
	// The control: the same message, signed properly, is applied. Without it
	// every refusal above could come from a broken setup.
	// It also shows that snapshot sees what an accepted message stores.
	body := fx.accept(t)
	before := snapshot(t, fx.target, fx.sent...)
	got := fx.deliver(t, a, fx.inbox, body)
	if got.status != http.StatusOK || got.receipt.Status != "accepted" || got.receipt.Seq != 3 {
		t.Fatalf("control: a well-formed accept was answered %d %+v %s", got.status, got.receipt, got.raw)
	}
	after := snapshot(t, fx.target, fx.sent...)
	for _, want := range []string{"record 3 ", "State:accepted", fmt.Sprintf("inbox %s %s held=true", a.DID(), fx.sent[len(fx.sent)-1].id)} {
		if strings.Contains(before, want) || !strings.Contains(after, want) {
			t.Errorf("control: snapshot does not show %q appear after the accept:\nbefore:\n%s\nafter:\n%s", want, before, after)
		}
	}
}

func TestSecurityStrictJSON(t *testing.T) {
	fx := newSecFixture(t)
	a := fx.attacker
	// Each payload is the attacker's accept with one trick spliced in, sealed
	// and HTTP-signed correctly: only strict decoding (spec §4.3) refuses it.
	splice := func(old, new string) func(t *testing.T, payload string) string {
		return func(t *testing.T, payload string) string {
			if !strings.Contains(payload, old) {
				t.Fatalf("%s is not in the payload %s", old, payload)
			}
			return strings.Replace(payload, old, new, 1)
		}
	}
	deep := strings.Repeat(`{"a":`, 8) + `{}` + strings.Repeat(`}`, 8)
	cases := []struct {
		name   string
		edit   func(t *testing.T, payload string) string
		reason string
	}{
		{"duplicate key", splice(`"type":`, `"type":"conference.decline","type":`), `duplicate key "type"`},
		{"keys differing by case", splice(`"origin":`, `"Origin":"did:web:elsewhere","origin":`), "differ only in case"},
		{"float", splice(`"content":{}`, `"content":{"n":1.5}`), "not an integer"},
		{"integer beyond 2^53", splice(`"content":{}`, `"content":{"n":9007199254740993}`), "is outside ±(2^53−1)"},
		{"invalid UTF-8", splice(`"content":{}`, "\"content\":{\"n\":\"\xff\"}"), "invalid UTF-8"},
		{"nesting deeper than 8", splice(`"content":{}`, `"content":`+deep), "nested deeper than 8"},
		{"byte order mark", func(_ *testing.T, payload string) string { return "\xef\xbb\xbf" + payload }, "byte order mark"},
	}
	for _, c := range cases {
		fx.attack(t, "JSON trick: "+c.name, secRefusal{400, "bad_request", c.reason}, func(t *testing.T) *http.Request {
			p := fx.payload(a, federation.TypeAccept, `{}`)
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			body := fx.seal(t, a, msgKey{a.DID(), p.ID}, []byte(c.edit(t, string(b))))
			return secSigned(t, a, http.MethodPost, fx.inbox, body, time.Now())
		})
	}
	fx.attack(t, "body over 1 MiB", secRefusal{413, "too_large", "is over 1048576"}, func(t *testing.T) *http.Request {
		body := fx.accept(t)
		body = append(body, bytes.Repeat([]byte(" "), 1<<20)...)
		return secSigned(t, a, http.MethodPost, fx.inbox, body, time.Now())
	})
}

func TestSecurityConferenceRules(t *testing.T) {
	fx := newSecFixture(t)
	a := fx.attacker
	ctx := context.Background()

	// Replay inside the window: the same message again, with a fresh HTTP
	// signature, is a duplicate and is applied once.
	body := fx.accept(t)
	id := fx.sent[len(fx.sent)-1]
	got := fx.deliver(t, a, fx.inbox, body)
	if got.status != http.StatusOK || got.receipt != (federation.ReceiptContent{Message: id.id, Status: "accepted", Seq: 3}) {
		t.Fatalf("first delivery of the accept: %d %+v %s", got.status, got.receipt, got.raw)
	}
	if !inboxHolds(t, fx.target, id) {
		t.Fatalf("the applied accept is not in the inbox dedupe table")
	}
	before := snapshot(t, fx.target, fx.sent...)
	got = fx.deliver(t, a, fx.inbox, body)
	if got.status != http.StatusOK || got.receipt != (federation.ReceiptContent{Message: id.id, Status: "duplicate"}) {
		t.Errorf("replayed accept: %d %+v, want a duplicate receipt for %s", got.status, got.receipt, id.id)
	}
	if after := snapshot(t, fx.target, fx.sent...); after != before {
		t.Errorf("replayed accept changed the target's store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if recs, _ := fx.target.Store().ListRecords(ctx, fx.conference, 0, 0); len(recs) != 3 {
		t.Errorf("log after the replay has %d records, want 3", len(recs))
	}

	// The same id with other content.
	fx.attack(t, "same message id with other content", secRefusal{409, "conflict", "conflicts with one already received"}, func(t *testing.T) *http.Request {
		p := fx.payload(a, federation.TypeAccept, `{}`)
		p.ID = id.id
		return secSigned(t, a, http.MethodPost, fx.inbox, fx.envelope(t, a, p), time.Now())
	})

	// An accept from a trusted node that was not invited.
	fx.attack(t, "accept from a node that was not invited", secRefusal{403, "forbidden", fx.other.DID() + " was not invited to " + fx.conference}, func(t *testing.T) *http.Request {
		p := fx.payload(fx.other, federation.TypeAccept, `{}`)
		return secSigned(t, fx.other, http.MethodPost, fx.inbox, fx.envelope(t, fx.other, p), time.Now())
	})

	// An event after the conference ended.
	if _, err := fx.target.Federation().Moderate(ctx, fx.host, fx.conference, federation.TypeEnd, ""); err != nil {
		t.Fatal(err)
	}
	fx.waitDelivered(t)
	fx.attack(t, "join after the conference ended", secRefusal{410, "gone", "conference " + fx.conference + " has ended"}, func(t *testing.T) *http.Request {
		user := "eve@" + a.DID()
		p := fx.payload(a, federation.TypeJoin, fmt.Sprintf(`{"user":%q,"display_name":"Eve","organisation":"Agency"}`, user))
		return secSigned(t, a, http.MethodPost, fx.inbox, fx.envelope(t, a, p), time.Now())
	})
}

func TestSecurityRotatedKeyAfterOverlap(t *testing.T) {
	fx := newSecFixture(t)
	a := fx.attacker
	oldKeyID, oldPriv := secKey(t, a)
	if _, err := a.Keys().Rotate(context.Background(), time.Second, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Past the overlap the old key is no longer published; the target
	// then reads the attacker's document afresh.
	oldFrag := strings.TrimPrefix(oldKeyID, a.DID()+"#")
	testwait.Until(t, 30*time.Second, func() bool {
		for _, k := range a.Keys().Keys(time.Now()) {
			if k.ID == oldFrag {
				return false
			}
		}
		return true
	}, "the old key %s is still published", oldKeyID)
	fx.target.Resolver().Forget(a.DID())
	fx.attack(t, "old key used after its rotation overlap", secRefusal{401, "unauthorized", oldKeyID + " is not a key of " + a.DID()}, func(t *testing.T) *http.Request {
		body := fx.accept(t)
		req := secRequest(t, http.MethodPost, fx.inbox, body)
		if err := federation.SignRequest(req, body, oldKeyID, oldPriv, time.Now()); err != nil {
			t.Fatal(err)
		}
		return req
	})
	// The control: the new key is accepted for the same kind of message.
	got := fx.deliver(t, a, fx.inbox, fx.accept(t))
	if got.status != http.StatusOK || got.receipt.Status != "accepted" {
		t.Fatalf("control: the rotated-in key was answered %d %+v %s", got.status, got.receipt, got.raw)
	}
}

func TestSecurityForgedLogWrongPrev(t *testing.T) {
	fx := newSecFixture(t)
	ctx := context.Background()
	// The attacker hosts a conference that the target replicates.
	host, _ := nodetest.User(t, fx.attacker, "hugo", "Hugo")
	conf := invitedConference(t, fx.attacker, host, "Hosted by the agency", fx.target)
	var replica store.Conference
	nodetest.Eventually(t, secWait, "the target's replica", func() bool {
		var err error
		replica, err = fx.target.Store().GetConference(ctx, conf.ID)
		return err == nil && replica.HeadSeq == 2
	})

	// A lock by the host's moderator, correctly signed, in a record whose
	// link names a wrong previous hash, sealed with the host's key.
	now := time.Now()
	lock, err := federation.MarshalPayload(federation.Payload{
		ID: federation.NewMessageID(), Type: federation.TypeLock, Origin: fx.attacker.DID(), Destination: fx.attacker.DID(),
		Sender: "hugo@" + fx.attacker.DID(), Conference: conf.ID,
		Created: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli(), Content: json.RawMessage(`{}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	lockEnv, err := federation.Seal(fx.attacker.DID(), fx.attacker.Keys(), lock)
	if err != nil {
		t.Fatal(err)
	}
	logMessage := func(prev string) []byte {
		link, err := json.Marshal(federation.LinkPayload{
			Conference: conf.ID, Seq: 3, Prev: prev, Event: federation.HashHex(lock),
			Host: fx.attacker.DID(), Created: now.UnixMilli(),
		})
		if err != nil {
			t.Fatal(err)
		}
		linkEnv, err := federation.Seal(fx.attacker.DID(), fx.attacker.Keys(), link)
		if err != nil {
			t.Fatal(err)
		}
		content, err := json.Marshal(federation.LogContent{Records: []federation.RecordJSON{{Event: lockEnv, Link: linkEnv}}})
		if err != nil {
			t.Fatal(err)
		}
		p := fx.payload(fx.attacker, federation.TypeLog, string(content))
		p.Conference, p.Sender = conf.ID, fx.attacker.DID()
		return fx.envelope(t, fx.attacker, p)
	}
	wrong := sha256.Sum256([]byte("not the head"))
	fx.attack(t, "conference.log whose link has a wrong prev", secRefusal{409, "conflict", "record 3 does not follow the head 2"}, func(t *testing.T) *http.Request {
		return secSigned(t, fx.attacker, http.MethodPost, fx.inbox, logMessage(hex.EncodeToString(wrong[:])), time.Now())
	})
	// The control: the same record linked to the real head is accepted.
	got := fx.deliver(t, fx.attacker, fx.inbox, logMessage(replica.HeadHash))
	if got.status != http.StatusOK || got.receipt.Status != "accepted" || got.receipt.Seq != 3 {
		t.Fatalf("control: the correctly linked record was answered %d %+v %s", got.status, got.receipt, got.raw)
	}
}

func TestSecurityPrivateAddressPeer(t *testing.T) {
	fx := newSecFixture(t)
	ctx := context.Background()
	closed := fx.f.Start(t, "Closed", func(c *config.Config) { c.Federation.AllowPrivateAddresses = false })
	if err := (federation.TrustList{Store: closed.Store()}).Add(ctx, store.Peer{DID: fx.attacker.DID(), Name: "Agency", AddedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	// The attacker's DID document and federation endpoint are on loopback.
	if _, err := closed.Resolver().Resolve(ctx, fx.attacker.DID()); !errors.Is(err, identity.ErrPrivateAddress) {
		t.Fatalf("resolving a loopback peer: %v, want an error wrapping identity.ErrPrivateAddress", err)
	}
	closed.Resolver().Forget(fx.attacker.DID())

	p := fx.payload(fx.attacker, federation.TypeAccept, `{}`)
	p.Destination = closed.DID()
	body := fx.envelope(t, fx.attacker, p)
	before := snapshot(t, closed, fx.sent...)
	got := fx.deliver(t, fx.attacker, closed.FederationEndpoint()+"/inbox", body)
	secRefusal{401, "unauthorized", "cannot resolve " + fx.attacker.DID()}.check(t, "signed request from a peer on a private address", got)
	if after := snapshot(t, closed, fx.sent...); after != before {
		t.Errorf("the refused request changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
