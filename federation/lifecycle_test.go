package federation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// apiClient calls a node's client API as one user, over real HTTPS.
type apiClient struct {
	t     *testing.T
	http  *http.Client
	base  string
	token string
}

func clientFor(t *testing.T, f *nodetest.Federation, n *nodetest.Node, token string) *apiClient {
	return &apiClient{t: t, http: f.Client(), base: n.PublicURL() + "/api/v1", token: token}
}

// do sends a request and decodes the answer into out (when not nil). It
// returns the status and the raw body.
func (c *apiClient) do(method, path string, body, out any) (int, string) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, r)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

func (c *apiClient) must(status int, method, path string, body, out any) {
	c.t.Helper()
	if got, raw := c.do(method, path, body, out); got != status {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, status, raw)
	}
}

func (c *apiClient) conference(id string) federation.ConferenceView {
	c.t.Helper()
	var v federation.ConferenceView
	c.must(200, "GET", "/conferences/"+id, nil, &v)
	return v
}

const wait = 10 * time.Second

func TestLifecycleTwoNodes(t *testing.T) {
	f, a, b := twoNodes(t)
	_, tokA := nodetest.User(t, a, "alice", "Alice Martin")
	_, tokB := nodetest.User(t, b, "bruno", "Bruno Lefèvre")
	alice, bruno := clientFor(t, f, a, tokA), clientFor(t, f, b, tokB)

	var conf federation.ConferenceView
	alice.must(201, "POST", "/conferences", map[string]any{"title": "Budget 2027"}, &conf)
	if !conf.Hosted || conf.Host != a.DID() || conf.Title != "Budget 2027" || conf.CreatedBy != "alice@"+a.DID() || conf.Head.Seq != 1 {
		t.Fatalf("created %+v", conf)
	}
	var inv map[string]int64
	alice.must(201, "POST", "/conferences/"+conf.ID+"/invitations", map[string]any{"node": b.DID()}, &inv)
	if inv["seq"] != 2 {
		t.Fatalf("invite seq %v", inv)
	}

	// The invitation reaches the agency, which shows it to its users.
	var invitations []federation.Invitation
	nodetest.Eventually(t, wait, "the invitation at the agency", func() bool {
		bruno.must(200, "GET", "/invitations", nil, &invitations)
		return len(invitations) == 1
	})
	if got := invitations[0]; got.Conference != conf.ID || got.Title != "Budget 2027" || got.Host != a.DID() || got.HostName != "Ministry" || got.InvitedBy != "alice@"+a.DID() {
		t.Fatalf("invitation %+v", got)
	}
	// The host answers within the request: the acceptance is record 3.
	var applied map[string]any
	bruno.must(200, "POST", "/invitations/"+conf.ID+"/accept", nil, &applied)
	if applied["status"] != "applied" || applied["seq"] != float64(3) {
		t.Fatalf("accept answer %v", applied)
	}
	nodetest.Eventually(t, wait, "the acceptance at the host", func() bool {
		v := alice.conference(conf.ID)
		return len(v.Nodes) == 1 && v.Nodes[0].State == "accepted"
	})

	alice.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil)
	bruno.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil)
	nodetest.Eventually(t, wait, "both participants at the host", func() bool {
		return len(alice.conference(conf.ID).Participants) == 2
	})

	// The agency asks the host for its signed roster; the agency's user is
	// shown with the organisation the agency's node vouched for.
	var roster federation.Roster
	bruno.must(200, "GET", "/conferences/"+conf.ID+"/participants", nil, &roster)
	want := map[string]federation.RosterMember{
		"alice@" + a.DID(): {User: "alice@" + a.DID(), DisplayName: "Alice Martin", Organisation: "Ministry", Node: a.DID(), JoinedSeq: 4},
		"bruno@" + b.DID(): {User: "bruno@" + b.DID(), DisplayName: "Bruno Lefèvre", Organisation: "Agency", Node: b.DID(), JoinedSeq: 5},
	}
	if len(roster.Participants) != 2 || roster.Head.Seq != 5 {
		t.Fatalf("roster %+v", roster)
	}
	for _, p := range roster.Participants {
		w := want[p.User]
		w.JoinEvent = p.JoinEvent
		if p != w || len(p.JoinEvent) != 64 {
			t.Errorf("roster member %+v, want %+v", p, w)
		}
	}

	// Lock: the agency's replica learns it, and a new join is refused.
	alice.must(200, "POST", "/conferences/"+conf.ID+"/lock", nil, nil)
	bruno.must(200, "POST", "/conferences/"+conf.ID+"/leave", nil, nil)
	nodetest.Eventually(t, wait, "the lock and the leave at the agency", func() bool {
		v := bruno.conference(conf.ID)
		return v.Locked && len(v.Participants) == 1
	})
	if status, body := bruno.do("POST", "/conferences/"+conf.ID+"/join", nil, nil); status != 403 || !strings.Contains(body, "the host refused: conference "+conf.ID+" is locked") {
		t.Fatalf("join while locked: %d %s", status, body)
	}
	alice.must(200, "POST", "/conferences/"+conf.ID+"/unlock", nil, nil)
	nodetest.Eventually(t, wait, "the unlock at the agency", func() bool { return !bruno.conference(conf.ID).Locked })
	bruno.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil)
	nodetest.Eventually(t, wait, "the second join at the host", func() bool {
		return len(alice.conference(conf.ID).Participants) == 2
	})

	// Only moderators remove; the host removes the remote participant.
	if status, _ := bruno.do("POST", "/conferences/"+conf.ID+"/remove", map[string]string{"user": "alice@" + a.DID()}, nil); status != 403 {
		t.Fatalf("remove from a member node: %d", status)
	}
	alice.must(200, "POST", "/conferences/"+conf.ID+"/remove", map[string]string{"user": "bruno@" + b.DID()}, nil)
	nodetest.Eventually(t, wait, "the removal at the agency", func() bool {
		return len(bruno.conference(conf.ID).Participants) == 1
	})

	alice.must(200, "POST", "/conferences/"+conf.ID+"/end", nil, nil)
	nodetest.Eventually(t, wait, "the end at the agency", func() bool { return bruno.conference(conf.ID).Ended })
	if status, body := bruno.do("POST", "/conferences/"+conf.ID+"/join", nil, nil); status != 410 {
		t.Fatalf("join after end: %d %s", status, body)
	}
	if status, body := alice.do("POST", "/conferences/"+conf.ID+"/join", nil, nil); status != 410 {
		t.Fatalf("host join after end: %d %s", status, body)
	}

	// Both nodes hold the same verified history.
	var repA, repB federation.AuditReport
	alice.must(200, "GET", "/conferences/"+conf.ID+"/events", nil, &repA)
	bruno.must(200, "GET", "/conferences/"+conf.ID+"/events", nil, &repB)
	types := []string{"conference.create", "conference.invite", "conference.accept", "participant.join", "participant.join",
		"conference.lock", "participant.leave", "conference.unlock", "participant.join", "participant.remove", "conference.end"}
	for _, rep := range []federation.AuditReport{repA, repB} {
		if !rep.Valid || len(rep.Entries) != len(types) {
			t.Fatalf("audit %+v", rep)
		}
		for i, e := range rep.Entries {
			if e.Type != types[i] || e.Seq != int64(i+1) || e.Hash != repA.Entries[i].Hash {
				t.Fatalf("entry %d: %+v", i, e)
			}
		}
	}
}

func TestLifecycleThreeNodes(t *testing.T) {
	_, a, b, c := threeNodes(t)
	alice, _ := nodetest.User(t, a, "alice", "Alice")
	bruno, _ := nodetest.User(t, b, "bruno", "Bruno")
	chloe, _ := nodetest.User(t, c, "chloe", "Chloé")
	other, _ := nodetest.User(t, c, "other", "Other")
	ctx := context.Background()

	conf := invitedConference(t, a, alice, "Three organisations", b)
	// The city is invited for one named user only.
	if _, err := a.Federation().Invite(ctx, alice, conf.ID, c.DID(), []string{"chloe"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		n *nodetest.Node
		u localuser.User
	}{{b, bruno}, {c, chloe}} {
		nodetest.Eventually(t, wait, "invitation at "+m.n.Name(), func() bool {
			inv, _ := m.n.Federation().Invitations(ctx, m.u)
			return len(inv) == 1
		})
	}
	if inv, _ := c.Federation().Invitations(ctx, other); len(inv) != 0 {
		t.Fatalf("a user not named sees the invitation: %+v", inv)
	}
	if _, _, err := c.Federation().Answer(ctx, other, conf.ID, true); !isStatus(err, 403) {
		t.Fatalf("accept by a user not named: %v", err)
	}
	for _, m := range []struct {
		n *nodetest.Node
		u localuser.User
	}{{b, bruno}, {c, chloe}} {
		if _, _, err := m.n.Federation().Answer(ctx, m.u, conf.ID, true); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, wait, "both acceptances", func() bool {
		v, _ := a.Federation().ConferenceDetail(ctx, conf.ID)
		return len(v.Nodes) == 2 && v.Nodes[0].State == "accepted" && v.Nodes[1].State == "accepted"
	})
	for _, m := range []struct {
		n *nodetest.Node
		u localuser.User
	}{{a, alice}, {b, bruno}, {c, chloe}} {
		if _, _, err := m.n.Federation().Join(ctx, m.u, conf.ID); err != nil {
			t.Fatal(err)
		}
	}
	// Every node's replica converges to the same head, and the agency holds
	// the city's join event, verified against the city's own key.
	nodetest.Eventually(t, wait, "all replicas at the same head", func() bool {
		va, _ := a.Federation().ConferenceDetail(ctx, conf.ID)
		vb, _ := b.Federation().ConferenceDetail(ctx, conf.ID)
		vc, _ := c.Federation().ConferenceDetail(ctx, conf.ID)
		return len(va.Participants) == 3 && va.Head == vb.Head && vb.Head == vc.Head
	})
	roster, err := b.Federation().Roster(ctx, conf.ID)
	if err != nil {
		t.Fatal(err)
	}
	var city *federation.RosterMember
	for i, p := range roster.Participants {
		if p.User == "chloe@"+c.DID() {
			city = &roster.Participants[i]
		}
	}
	if city == nil || city.Organisation != "City" || city.Node != c.DID() || city.DisplayName != "Chloé" {
		t.Fatalf("city participant in the agency's roster: %+v", roster)
	}
	rec, err := b.Store().ListRecords(ctx, conf.ID, city.JoinedSeq-1, 1)
	if err != nil || len(rec) != 1 || rec[0].Origin != c.DID() || rec[0].EventType != federation.TypeJoin {
		t.Fatalf("join record at the agency: %+v %v", rec, err)
	}
	for _, n := range []*nodetest.Node{a, b, c} {
		rep, err := n.Federation().Audit(ctx, conf.ID)
		if err != nil || !rep.Valid || len(rep.Entries) != 8 {
			t.Fatalf("audit at %s: %+v %v", n.Name(), rep, err)
		}
	}
}

func isStatus(err error, status int) bool {
	var fe *httpapi.Error
	return err != nil && errors.As(err, &fe) && fe.Status == status
}

func TestPeerDownDuringInviteReceivesItAfterRestart(t *testing.T) {
	_, a, b := twoNodes(t)
	alice, _ := nodetest.User(t, a, "alice", "Alice")
	ctx := context.Background()
	b.Stop(t)

	conf := invitedConference(t, a, alice, "While you were out", b)
	nodetest.Eventually(t, wait, "failed delivery attempts", func() bool {
		msgs, _ := a.Store().ListOutbox(ctx, b.DID(), store.OutboxPending)
		return len(msgs) == 1 && msgs[0].Attempts >= 2 && msgs[0].LastError != ""
	})
	b = b.Restart(t)
	bruno, _ := nodetest.User(t, b, "bruno", "Bruno")
	nodetest.Eventually(t, wait, "the invitation after the restart", func() bool {
		inv, _ := b.Federation().Invitations(ctx, bruno)
		return len(inv) == 1 && inv[0].Conference == conf.ID
	})
	// The host marks the message delivered once it holds the signed receipt,
	// just after the peer applied it.
	nodetest.Eventually(t, wait, "the message marked delivered with its receipt", func() bool {
		msgs, _ := a.Store().ListOutbox(ctx, b.DID(), "")
		return len(msgs) == 1 && msgs[0].State == store.OutboxDelivered && len(msgs[0].Receipt) > 0
	})
}

func TestNodeStoppedMidOutboxResumes(t *testing.T) {
	_, a, b := twoNodes(t)
	alice, _ := nodetest.User(t, a, "alice", "Alice")
	ctx := context.Background()
	b.Stop(t)
	conf := invitedConference(t, a, alice, "Resume", b)
	// Three more records queued behind the first for the same peer.
	for _, typ := range []string{federation.TypeLock, federation.TypeUnlock, federation.TypeLock} {
		if _, err := a.Federation().Moderate(ctx, alice, conf.ID, typ, ""); err != nil {
			t.Fatal(err)
		}
	}
	a.Stop(t) // the host goes down with four messages in its outbox
	b = b.Restart(t)
	a = a.Restart(t)
	nodetest.Eventually(t, wait, "the whole log at the agency", func() bool {
		v, err := b.Federation().ConferenceDetail(ctx, conf.ID)
		return err == nil && v.Head.Seq == 5 && v.Locked
	})
	nodetest.Eventually(t, wait, "the four messages marked delivered", func() bool {
		msgs, _ := a.Store().ListOutbox(ctx, b.DID(), store.OutboxDelivered)
		return len(msgs) == 4
	})
	if all, _ := a.Store().ListOutbox(ctx, b.DID(), ""); len(all) != 4 {
		t.Fatalf("want exactly 4 messages to the agency, got %d", len(all))
	}
	rep, err := b.Federation().Audit(ctx, conf.ID)
	if err != nil || !rep.Valid || len(rep.Entries) != 5 {
		t.Fatalf("audit at the agency: %+v %v", rep, err)
	}
}

func TestMessageDeliveredTwiceIsAppliedOnce(t *testing.T) {
	_, a, b := twoNodes(t)
	alice, _ := nodetest.User(t, a, "alice", "Alice")
	ctx := context.Background()
	conf := invitedConference(t, a, alice, "Twice", b)
	var delivered store.OutboxMessage
	nodetest.Eventually(t, wait, "delivery", func() bool {
		msgs, _ := a.Store().ListOutbox(ctx, b.DID(), store.OutboxDelivered)
		if len(msgs) == 1 {
			delivered = msgs[0]
		}
		return len(msgs) == 1
	})
	before, _ := b.Store().ListRecords(ctx, conf.ID, 0, 0)

	// The same message again, freshly signed at the HTTP level as a retry
	// after a lost answer would be.
	client := &federation.Client{HTTP: a.HTTPClient(), DID: a.DID(), Keys: a.Keys(), Now: time.Now}
	status, body, err := client.Do(ctx, "POST", b.FederationEndpoint()+"/inbox", delivered.Body)
	if err != nil || status != 200 {
		t.Fatalf("second delivery: %d %s %v", status, body, err)
	}
	env, err := federation.DecodeEnvelope(body)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := env.PayloadBytes()
	p, _ := federation.DecodePayload(pb)
	var rc federation.ReceiptContent
	json.Unmarshal(p.Content, &rc)
	if p.Type != "receipt" || p.Origin != b.DID() || p.Destination != a.DID() || rc.Status != "duplicate" || rc.Message != delivered.MessageID {
		t.Fatalf("receipt %+v %+v", p, rc)
	}
	after, _ := b.Store().ListRecords(ctx, conf.ID, 0, 0)
	if len(before) != 2 || len(after) != 2 {
		t.Fatalf("records before %d, after %d; want 2 and 2", len(before), len(after))
	}
}

func TestLobbyAdmitsRemoteParticipant(t *testing.T) {
	f, a, b := twoNodes(t)
	_, tokA := nodetest.User(t, a, "alice", "Alice")
	_, tokB := nodetest.User(t, b, "bruno", "Bruno")
	_, tokD := nodetest.User(t, b, "dora", "Dora")
	alice, bruno, dora := clientFor(t, f, a, tokA), clientFor(t, f, b, tokB), clientFor(t, f, b, tokD)

	var conf federation.ConferenceView
	alice.must(201, "POST", "/conferences", map[string]any{"title": "Interviews", "lobby": true}, &conf)
	if !conf.Lobby {
		t.Fatalf("lobby not on: %+v", conf)
	}
	alice.must(201, "POST", "/conferences/"+conf.ID+"/invitations", map[string]any{"node": b.DID()}, nil)
	nodetest.Eventually(t, wait, "the invitation", func() bool {
		var inv []federation.Invitation
		bruno.must(200, "GET", "/invitations", nil, &inv)
		return len(inv) == 1
	})
	bruno.must(200, "POST", "/invitations/"+conf.ID+"/accept", nil, nil)
	alice.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil) // the host's own users come in directly

	// Remote users knock and wait.
	bruno.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil)
	dora.must(200, "POST", "/conferences/"+conf.ID+"/join", nil, nil)
	v := alice.conference(conf.ID)
	if len(v.Participants) != 1 || len(v.Waiting) != 2 || v.Waiting[0].User != "bruno@"+b.DID() || v.Waiting[0].Organisation != "Agency" {
		t.Fatalf("after knocking: participants %+v, waiting %+v", v.Participants, v.Waiting)
	}
	if err := a.Federation().MayParticipate(context.Background(), conf.ID, "bruno@"+b.DID()); !isStatus(err, 403) {
		t.Fatalf("media for someone in the lobby: %v", err)
	}
	// Only the host's moderators admit.
	if status, _ := bruno.do("POST", "/conferences/"+conf.ID+"/admit", map[string]string{"user": "bruno@" + b.DID()}, nil); status != 403 {
		t.Fatalf("self-admission: %d", status)
	}
	alice.must(200, "POST", "/conferences/"+conf.ID+"/admit", map[string]string{"user": "bruno@" + b.DID()}, nil)
	alice.must(200, "POST", "/conferences/"+conf.ID+"/deny", map[string]string{"user": "dora@" + b.DID()}, nil)
	nodetest.Eventually(t, wait, "the admission at the agency", func() bool {
		v := bruno.conference(conf.ID)
		return len(v.Participants) == 2 && len(v.Waiting) == 0
	})
	if err := b.Federation().MayParticipate(context.Background(), conf.ID, "bruno@"+b.DID()); err != nil {
		t.Fatalf("admitted participant: %v", err)
	}
	if err := b.Federation().MayParticipate(context.Background(), conf.ID, "dora@"+b.DID()); !isStatus(err, 403) {
		t.Fatalf("denied participant: %v", err)
	}
	var rep federation.AuditReport
	bruno.must(200, "GET", "/conferences/"+conf.ID+"/events", nil, &rep)
	types := []string{}
	for _, e := range rep.Entries {
		types = append(types, e.Type)
	}
	want := "conference.create conference.invite conference.accept participant.join participant.knock participant.knock participant.admit participant.deny"
	if !rep.Valid || strings.Join(types, " ") != want {
		t.Fatalf("log %v valid=%v", types, rep.Valid)
	}
}
