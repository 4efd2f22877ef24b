package replicatest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/testwait"
	"github.com/entente-org/entente/store/storetest"
)

// bin is cmd/entente built once for every test of the package.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "entente-replicatest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// generous bounds every wait: the machine may be busy; the timings
// themselves are measured and logged, not asserted.
const generous = 60 * time.Second

type conference struct {
	ID string `json:"id"`
}

type logEntry struct {
	Seq    int64  `json:"seq"`
	Hash   string `json:"hash"`
	Type   string `json:"type"`
	Sender string `json:"sender"`
}

type eventLog struct {
	Valid   bool       `json:"valid"`
	Entries []logEntry `json:"entries"`
}

// meeting makes users and a conference they all joined, each through a
// different replica (a request may land anywhere).
func meeting(t *testing.T, n *Node, names ...string) (string, map[string]string) {
	t.Helper()
	tokens := map[string]string{}
	for _, name := range names {
		tokens[name] = n.User(t, name)
	}
	var c conference
	if err := n.API(n.Replicas[0].URL, tokens[names[0]], "POST", "/conferences", map[string]any{"title": "Replicas"}, &c); err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		r := n.Replicas[i%len(n.Replicas)]
		if err := n.API(r.URL, tokens[name], "POST", "/conferences/"+url.PathEscape(c.ID)+"/join", struct{}{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return c.ID, tokens
}

func mediaURL(base, conf string) string {
	return "wss://" + strings.TrimPrefix(base, "https://") + "/api/v1/conferences/" + url.PathEscape(conf) + "/media"
}

func (n *Node) participant(t *testing.T, name, token, base, conf string) *Participant {
	p := &Participant{Name: name, Token: token, URL: mediaURL(base, conf), HTTP: n.WebSocketClient()}
	p.Start()
	t.Cleanup(p.Close)
	return p
}

// hears waits until p has received from every other participant a packet
// sent at or after since.
func hears(t *testing.T, p *Participant, since time.Time, others ...*Participant) time.Time {
	t.Helper()
	var last time.Time
	for _, o := range others {
		if !testwait.For(generous, func() bool {
			pk, ok := p.ReceivedFromSince(o, since)
			if ok && pk.At.After(last) {
				last = pk.At
			}
			return ok
		}) {
			t.Fatalf("after %s: %s receives no media from %s sent after %s (sessions %d, last error %v)",
				generous, p.Name, o.Name, since.Format(time.StampMilli), p.Sessions(), p.LastError())
		}
	}
	return last
}

var placedOn = regexp.MustCompile(`on=(replica-\d+)`)

// owner finds the replica the conference was last placed on, from the
// replicas' logs.
func owner(t *testing.T, n *Node, conf string, not string) *Replica {
	t.Helper()
	var id string
	testwait.Until(t, generous, func() bool {
		for _, r := range n.Replicas {
			lines := r.logs.all("conference placed", conf)
			for _, l := range lines {
				if m := placedOn.FindStringSubmatch(l); m != nil && m[1] != not {
					id = m[1]
				}
			}
		}
		return id != ""
	}, "no replica logged placing %s (other than %q)", conf, not)
	for _, r := range n.Replicas {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("placed on unknown replica %s", id)
	return nil
}

func events(t *testing.T, n *Node, base, token, conf string) []logEntry {
	t.Helper()
	var l eventLog
	if err := n.API(base, token, "GET", "/conferences/"+url.PathEscape(conf)+"/events", nil, &l); err != nil {
		t.Fatal(err)
	}
	if !l.Valid {
		t.Fatalf("the conference's log does not verify: %+v", l)
	}
	return l.Entries
}

// keptPrefix fails unless after begins with before, entry for entry.
func keptPrefix(t *testing.T, before, after []logEntry) {
	t.Helper()
	if len(after) < len(before) {
		t.Fatalf("the log lost entries: %d before, %d after", len(before), len(after))
	}
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("log entry %d changed: %+v, now %+v", i, before[i], after[i])
		}
	}
}

// A client on each of three replicas, in one conference: each receives the
// others' media byte for byte, and the signals sent through any replica.
func TestClientOnEachReplica(t *testing.T) {
	n := Start(t, bin, 3, Options{})
	conf, tokens := meeting(t, n, "alice", "bruno", "chloe")
	alice := n.participant(t, "alice", tokens["alice"], n.Replicas[0].URL, conf)
	bruno := n.participant(t, "bruno", tokens["bruno"], n.Replicas[1].URL, conf)
	chloe := n.participant(t, "chloe", tokens["chloe"], n.Replicas[2].URL, conf)
	all := []*Participant{alice, bruno, chloe}
	start := time.Now()
	for _, p := range all {
		var others []*Participant
		for _, o := range all {
			if o != p {
				others = append(others, o)
			}
		}
		hears(t, p, start, others...)
	}
	for _, p := range all {
		if err := p.CheckPayloads(); err != nil {
			t.Fatal(err)
		}
	}
	own := owner(t, n, conf, "")
	t.Logf("conference %s runs on %s; the clients of the two others reach it through their replica", conf, own.ID)

	// Chat through a replica that is not the clients' own, both ways.
	say := func(who, via, text string) {
		t.Helper()
		if err := n.API(via, tokens[who], "POST", "/conferences/"+url.PathEscape(conf)+"/signals",
			map[string]any{"kind": "chat", "text": text}, nil); err != nil {
			t.Fatal(err)
		}
	}
	say("alice", n.Replicas[2].URL, "from alice via replica-3")
	say("chloe", n.Replicas[0].URL, "from chloe via replica-1")
	for _, p := range all {
		for _, want := range []struct{ text, user string }{
			{"from alice via replica-3", "alice@"}, {"from chloe via replica-1", "chloe@"},
		} {
			testwait.Until(t, generous, func() bool {
				for _, s := range p.Signals() {
					if s["kind"] == "chat" && s["text"] == want.text && s["conference"] == conf &&
						strings.HasPrefix(fmt.Sprint(s["user"]), want.user) {
						return true
					}
				}
				return false
			}, "%s did not receive the chat %q", p.Name, want.text)
		}
	}
	for _, p := range all {
		if got := len(p.Signals()); got != 2 {
			t.Fatalf("%s received %d signals, want exactly 2: %v", p.Name, got, p.Signals())
		}
	}

	// A removal through a third replica reaches the removed user's client,
	// wherever it is connected: the log change travels through NATS.
	chloeRef := ""
	for _, s := range alice.Signals() {
		if s["text"] == "from chloe via replica-1" {
			chloeRef = fmt.Sprint(s["user"])
		}
	}
	if err := n.API(n.Replicas[1].URL, tokens["alice"], "POST", "/conferences/"+url.PathEscape(conf)+"/remove",
		map[string]any{"user": chloeRef}, nil); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, generous, func() bool {
		for _, c := range chloe.CloseCodes() {
			if c == 1008 {
				return true
			}
		}
		return false
	}, "chloe's client was not sent away after her removal (close codes %v)", chloe.CloseCodes())
}

// SIGKILL of the replica running a conference: its clients, connected
// through the load balancer, come back with media on a survivor, and the
// conference's log keeps every entry.
func TestOwnerKilled(t *testing.T) {
	n := Start(t, bin, 3, Options{})
	conf, tokens := meeting(t, n, "alice", "bruno")
	alice := n.participant(t, "alice", tokens["alice"], n.PublicURL, conf)
	bruno := n.participant(t, "bruno", tokens["bruno"], n.PublicURL, conf)
	start := time.Now()
	hears(t, alice, start, bruno)
	hears(t, bruno, start, alice)
	own := owner(t, n, conf, "")
	before := events(t, n, n.PublicURL, tokens["alice"], conf)

	killed := time.Now()
	own.Kill(t)
	n.Balancer.Remove(own.Addr)
	for _, p := range []*Participant{alice, bruno} {
		testwait.Until(t, generous, func() bool { return p.Sessions() >= 2 },
			"%s did not reconnect after the SIGKILL", p.Name)
	}
	last := hears(t, alice, killed, bruno)
	if l := hears(t, bruno, killed, alice); l.After(last) {
		last = l
	}
	took := last.Sub(killed)
	next := owner(t, n, conf, own.ID)
	t.Logf("SIGKILL of %s to media flowing again both ways on %s: %s", own.ID, next.ID, took.Round(time.Millisecond))
	for _, p := range []*Participant{alice, bruno} {
		if err := p.CheckPayloads(); err != nil {
			t.Fatal(err)
		}
		if p.Sessions() < 2 {
			t.Fatalf("%s joined %d times; it should have reconnected", p.Name, p.Sessions())
		}
	}
	after := events(t, n, n.PublicURL, tokens["bruno"], conf)
	keptPrefix(t, before, after)
	for _, e := range after[len(before):] {
		if e.Type == "leave" || e.Type == "remove" || e.Type == "end" {
			t.Fatalf("the failover wrote %q to the log: %+v", e.Type, e)
		}
	}
}

// SIGTERM drains: the replica's clients are told to reconnect (1012), come
// back on another replica with media, and the replica exits cleanly.
func TestDrainDropsNoCall(t *testing.T) {
	n := Start(t, bin, 3, Options{})
	conf, tokens := meeting(t, n, "alice", "bruno")
	alice := n.participant(t, "alice", tokens["alice"], n.PublicURL, conf)
	bruno := n.participant(t, "bruno", tokens["bruno"], n.PublicURL, conf)
	start := time.Now()
	hears(t, alice, start, bruno)
	hears(t, bruno, start, alice)
	own := owner(t, n, conf, "")
	before := events(t, n, n.PublicURL, tokens["alice"], conf)

	stopped := time.Now()
	n.Balancer.Remove(own.Addr) // as Kubernetes does for a terminating pod
	own.Terminate(t)
	// Packets sent just after the signal may still take the old path:
	// media counts only once both clients have come back.
	for _, p := range []*Participant{alice, bruno} {
		testwait.Until(t, generous, func() bool { return p.Sessions() >= 2 },
			"%s did not reconnect after the drain", p.Name)
	}
	back := time.Now()
	last := hears(t, alice, back, bruno)
	if l := hears(t, bruno, back, alice); l.After(last) {
		last = l
	}
	next := owner(t, n, conf, own.ID)
	t.Logf("SIGTERM of %s to media flowing again both ways on %s: %s", own.ID, next.ID, last.Sub(stopped).Round(time.Millisecond))
	select {
	case <-own.Exited():
	case <-time.After(generous):
		t.Fatalf("%s did not exit after SIGTERM", own.ID)
	}
	if err := own.ExitErr(); err != nil {
		t.Fatalf("%s exited with %v\n%s", own.ID, err, own.Logs(30))
	}
	if !own.HasLog("drained") {
		t.Fatalf("%s did not log its drain:\n%s", own.ID, own.Logs(30))
	}
	for _, p := range []*Participant{alice, bruno} {
		if err := p.CheckPayloads(); err != nil {
			t.Fatal(err)
		}
		codes := p.CloseCodes()
		if len(codes) == 0 || codes[0] != 1012 {
			t.Fatalf("%s's WebSocket closed with %v, want 1012 (service restart) first", p.Name, codes)
		}
	}
	after := events(t, n, n.PublicURL, tokens["bruno"], conf)
	keptPrefix(t, before, after)
	for _, e := range after[len(before):] {
		if e.Type == "leave" || e.Type == "remove" || e.Type == "end" {
			t.Fatalf("the drain wrote %q to the log: %+v", e.Type, e)
		}
	}
}

// A replica that cannot be one says why and does not start.
func TestMisconfiguredReplicaRefusesToStart(t *testing.T) {
	natsURL := NATSURL(t)
	dir := t.TempDir()
	base := []string{
		"ENTENTE_NODE_NAME=Ministry", "ENTENTE_NODE_PUBLIC_URL=https://127.0.0.1:1",
		"ENTENTE_NODE_DATA_DIR=" + filepath.Join(dir, "data"), "ENTENTE_HTTP_LISTEN=127.0.0.1:0",
		"ENTENTE_CLUSTER_INTERNAL_URL=https://127.0.0.1:1", "ENTENTE_LOG_FORMAT=text",
	}
	pg := "ENTENTE_DATABASE_URL=" + storetest.PostgresURL(t)
	noJS := natsWithoutJetStream(t)
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"without PostgreSQL", []string{"ENTENTE_CLUSTER_NATS_URL=" + natsURL, "ENTENTE_KEYS_STORAGE=database"},
			"database.url: a PostgreSQL URL is required when cluster.nats_url is set"},
		{"with keys in a file", []string{"ENTENTE_CLUSTER_NATS_URL=" + natsURL, pg},
			`keys.storage: must be "database" when cluster.nats_url is set`},
		{"NATS unreachable", []string{"ENTENTE_CLUSTER_NATS_URL=nats://127.0.0.1:1", pg, "ENTENTE_KEYS_STORAGE=database"},
			"cluster.nats_url: cannot connect to NATS at nats://127.0.0.1:1"},
		{"NATS without JetStream", []string{"ENTENTE_CLUSTER_NATS_URL=" + noJS, pg, "ENTENTE_KEYS_STORAGE=database"},
			"cluster.nats_url: NATS at " + noJS + " has no JetStream"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, "serve")
			cmd.Env = append(append(os.Environ(), base...), tc.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("serve started:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output does not say %q:\n%s", tc.want, out)
			}
		})
	}
}

// natsWithoutJetStream starts a NATS server without JetStream.
func natsWithoutJetStream(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nats-server is not on PATH (scripts/test-all installs it)")
		}
		t.Skip("nats-server is not on PATH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(path, "-a", "127.0.0.1", "-p", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testwait.Until(t, generous, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "nats-server did not listen on %s", addr)
	return "nats://" + addr
}
