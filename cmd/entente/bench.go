package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/node"
	"github.com/entente-org/entente/store"
)

func (a *app) benchCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure this build's performance on this machine",
		Args:  noArgs,
		RunE:  groupRun,
	}
	c.AddCommand(a.benchFederationCommand(), a.benchMediaCommand())
	return c
}

type benchFederationOptions struct {
	duration    time.Duration
	invites     int
	messages    int
	databaseURL string
	// flood is floodNone, floodUntrusted or floodTrusted (benchflood.go).
	flood         string
	floodWorkers  int
	floodRequests int64
	floodBody     int
	// partition, when set, selects the partition measurement instead
	// (benchpartition.go).
	partition time.Duration
}

// Bounds of the flags, so that every measurement loop ends.
const (
	maxBenchDuration = 10 * time.Minute
	maxBenchInvites  = 10_000
	maxBenchMessages = 100_000
	// maxEnvelopeOps bounds the sign+verify loop in count as well as time.
	maxEnvelopeOps = 100_000_000
	// benchPoll is how often a measurement looks for the effect it waits for;
	// it bounds the error of each latency.
	benchPoll = time.Millisecond
	// benchStepLimit is the longest one invitation or acceptance may take
	// before the benchmark gives up.
	benchStepLimit = 30 * time.Second
)

func (a *app) benchFederationCommand() *cobra.Command {
	var o benchFederationOptions
	c := &cobra.Command{
		Use:   "federation",
		Short: "Measure envelope signing, invitations and outbox delivery between two local nodes",
		Long: `Start two complete nodes on 127.0.0.1 in a temporary directory, with a local
CA, make them trust each other, and measure:
  - envelope sign+verify throughput on one core, for --duration;
  - --invites sequential invitations, each from the Invite call on the first
    node until the first node sees the second one's acceptance;
  - outbox throughput: --messages lock/unlock events of a conference the
    second node takes part in, from the first enqueue until the second node's
    replica holds the last;
  - with --flood untrusted or trusted, the invitations once more while a
    third local node, untrusted or trusted by both, sends both signed
    requests of --flood-body bytes from --flood-workers connections (at most
    --flood-requests, and never beyond the invitations).
With --partition D, measure instead how a federation recovers from a network
partition: both nodes behind loopback proxies, the path between them cut
silently (no FIN, no RST) for D while each side writes chat (one line a
second) and the host changes the conference's log (every 5 s), then healed;
it reports the time from the heal until the guest's replica has the host's
head and until the last chat line arrived, and how many lines arrived, once
each and in order.
Prints one JSON object. Stores are SQLite unless --database-url names a
PostgreSQL server, where each node gets a schema of its own, dropped at the end.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.duration <= 0 || o.duration > maxBenchDuration {
				return usagef("--duration must be positive and at most %s, got %s", maxBenchDuration, o.duration)
			}
			if o.invites < 1 || o.invites > maxBenchInvites {
				return usagef("--invites must be between 1 and %d, got %d", maxBenchInvites, o.invites)
			}
			if o.messages < 1 || o.messages > maxBenchMessages {
				return usagef("--messages must be between 1 and %d, got %d", maxBenchMessages, o.messages)
			}
			switch o.flood {
			case floodNone, floodUntrusted, floodTrusted:
			default:
				return usagef("--flood must be %s, %s or %s, got %q", floodNone, floodUntrusted, floodTrusted, o.flood)
			}
			if o.floodWorkers < 1 || o.floodWorkers > maxFloodWorkers {
				return usagef("--flood-workers must be between 1 and %d, got %d", maxFloodWorkers, o.floodWorkers)
			}
			if o.floodRequests < 1 || o.floodRequests > maxFloodRequests {
				return usagef("--flood-requests must be between 1 and %d, got %d", maxFloodRequests, o.floodRequests)
			}
			if o.floodBody < minFloodBody || o.floodBody > maxFloodBody {
				return usagef("--flood-body must be between %d and %d bytes, got %d", minFloodBody, maxFloodBody, o.floodBody)
			}
			if o.partition < 0 || o.partition > maxBenchDuration {
				return usagef("--partition must be at most %s, got %s", maxBenchDuration, o.partition)
			}
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if o.partition > 0 {
				res, err := a.benchPartition(ctx, o)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			res, err := a.benchFederation(ctx, o)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		},
	}
	c.Flags().DurationVar(&o.duration, "duration", 3*time.Second, "how long to measure envelope sign+verify throughput")
	c.Flags().IntVar(&o.invites, "invites", 50, "number of sequential invite-to-accepted cycles")
	c.Flags().IntVar(&o.messages, "messages", 500, "number of events delivered through the outbox")
	c.Flags().StringVar(&o.flood, "flood", floodNone, "measure the invitations again during a flood from an \"untrusted\" or a \"trusted\" node")
	c.Flags().IntVar(&o.floodWorkers, "flood-workers", 8, "concurrent connections of the flood")
	c.Flags().Int64Var(&o.floodRequests, "flood-requests", 1_000_000, "most requests the flood sends")
	c.Flags().IntVar(&o.floodBody, "flood-body", maxFloodBody, "bytes of each flood request's body")
	c.Flags().DurationVar(&o.partition, "partition", 0, "measure recovery from a network partition of this length instead (e.g. 60s)")
	c.Flags().StringVar(&o.databaseURL, "database-url", "", "PostgreSQL URL for the nodes' stores (default: SQLite in the temporary directory)")
	return c
}

// federationBench is the JSON that `entente bench federation` prints.
type federationBench struct {
	EnvelopesPerSecond float64        `json:"envelope_sign_verify_per_s"`
	InviteToAccepted   latencySummary `json:"invite_to_accepted_ms"`
	OutboxPerSecond    float64        `json:"outbox_msgs_per_s"`
	OutboxMessages     int            `json:"outbox_messages"`
	Flood              *floodReport   `json:"flood,omitempty"`
	Store              string         `json:"store"`
	Cores              int            `json:"cores"`
	Go                 string         `json:"go"`
}

// latencySummary is in milliseconds.
type latencySummary struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	Max float64 `json:"max"`
	N   int     `json:"n"`
}

// benchPair is the two nodes measured: a hosts, b is invited.
type benchPair struct {
	a, b         *node.Node
	alice, bruno localuser.User
}

func (a *app) benchFederation(ctx context.Context, o benchFederationOptions) (_ federationBench, err error) {
	res := federationBench{Store: store.BackendSQLite, Cores: runtime.NumCPU(), Go: runtime.Version()}
	dir, err := os.MkdirTemp("", "entente-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	log := newLogger(a.stderr, "text", "warn")

	ca, caFile, err := localCA(dir, "bench", 24*time.Hour)
	if err != nil {
		return res, err
	}
	names := []string{"Bench Host", "Bench Guest"}
	if o.flood != floodNone {
		names = append(names, "Bench Flooder")
	}
	databaseURLs := make([]string, len(names))
	if o.databaseURL != "" {
		res.Store = store.BackendPostgres
		var drop func() error
		if databaseURLs, drop, err = benchSchemas(ctx, o.databaseURL, len(databaseURLs)); err != nil {
			return res, err
		}
		defer func() {
			// Assigns the named result: a schema left behind is a failure.
			if dropErr := drop(); dropErr != nil && err == nil {
				err = dropErr
			}
		}()
	}

	var nodes []*node.Node
	defer func() {
		// Together, so that no node waits for another's open connections.
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() { n.Shutdown(context.Background()) })
		}
		wg.Wait()
	}()
	for i, name := range names {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return res, fmt.Errorf("bench node %s: %w", name, err)
		}
		n, err := startLocalNode(ctx, l, localNode{
			name: name, dataDir: filepath.Join(dir, fmt.Sprintf("node-%d", i+1)), ca: ca, caFile: caFile,
			log: log.With("institution", name), databaseURL: databaseURLs[i],
		})
		if err != nil {
			return res, fmt.Errorf("bench node %s: %w", name, err)
		}
		nodes = append(nodes, n)
	}
	if err := demoTrust(ctx, nodes[:2]); err != nil {
		return res, err
	}
	// Resolving each other's DID documents first keeps the first invitation
	// from paying for it.
	if err := demoFederate(ctx, nodes[:2]); err != nil {
		return res, err
	}
	p := benchPair{a: nodes[0], b: nodes[1]}
	if p.alice, err = benchUser(ctx, p.a, "alice", "Alice Martin"); err != nil {
		return res, err
	}
	if p.bruno, err = benchUser(ctx, p.b, "bruno", "Bruno Lefèvre"); err != nil {
		return res, err
	}

	if res.EnvelopesPerSecond, err = envelopeThroughput(ctx, p.a, o.duration); err != nil {
		return res, err
	}
	latencies, conference, err := p.inviteCycles(ctx, o.invites)
	if err != nil {
		return res, err
	}
	res.InviteToAccepted = summarize(latencies)
	if o.flood != floodNone {
		if res.Flood, err = p.floodedInvites(ctx, nodes[2], ca.Pool(), o); err != nil {
			return res, err
		}
	}
	if res.OutboxPerSecond, err = p.outboxThroughput(ctx, conference, o.messages); err != nil {
		return res, err
	}
	res.OutboxMessages = o.messages
	return res, nil
}

func benchUser(ctx context.Context, n *node.Node, id, name string) (localuser.User, error) {
	u, err := accounts.AddUser(ctx, n.Store(), id, name, false, time.Now())
	if err != nil {
		return localuser.User{}, fmt.Errorf("bench user %s on %s: %w", id, n.Name(), err)
	}
	return localuser.User{ID: u.ID, DisplayName: u.DisplayName}, nil
}

// envelopeThroughput seals an invitation with n's current key and opens it
// again, on one goroutine, for d; it returns envelopes per second.
func envelopeThroughput(ctx context.Context, n *node.Node, d time.Duration) (float64, error) {
	keyID := n.DID() + "#" + n.Keys().CurrentID()
	var pub atcrypto.PublicKey
	for _, k := range n.Keys().Keys(time.Now()) {
		if k.ID == n.Keys().CurrentID() {
			var err error
			if pub, err = atcrypto.ParsePublicMultibase(k.PublicMultibase); err != nil {
				return 0, fmt.Errorf("envelope bench: key %s: %w", keyID, err)
			}
		}
	}
	if pub == nil {
		return 0, fmt.Errorf("envelope bench: current key %s is not among the node's keys", keyID)
	}
	lookup := func(_ context.Context, id string) (atcrypto.PublicKey, error) {
		if id != keyID {
			return nil, fmt.Errorf("unknown key %s", id)
		}
		return pub, nil
	}
	now := time.Now()
	peer := "did:web:agency.example"
	content, err := json.Marshal(federation.InviteContent{Node: peer, Users: []string{}})
	if err != nil {
		return 0, err
	}
	payload, err := federation.MarshalPayload(federation.Payload{
		ID: federation.NewMessageID(), Type: federation.TypeInvite,
		Origin: n.DID(), Destination: peer, Sender: federation.UserRef("alice", n.DID()),
		Conference: federation.NewConferenceID(),
		Created:    now.UnixMilli(), Expires: now.Add(24 * time.Hour).UnixMilli(),
		Content: content,
	})
	if err != nil {
		return 0, fmt.Errorf("envelope bench: %w", err)
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	deadline := start.Add(d)
	ops := 0
	for ops < maxEnvelopeOps && time.Now().Before(deadline) {
		env, err := federation.Seal(n.DID(), n.Keys(), payload)
		if err != nil {
			return 0, fmt.Errorf("envelope bench: %w", err)
		}
		if _, _, err := federation.Open(ctx, env, lookup); err != nil {
			return 0, fmt.Errorf("envelope bench: %w", err)
		}
		ops++
		if ops%256 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	return perSecond(ops, time.Since(start)), nil
}

// inviteCycles runs count invitations one after the other, each to a fresh
// conference, and returns how long each took from the Invite call until the
// host saw the acceptance, and the last conference.
func (p benchPair) inviteCycles(ctx context.Context, count int) ([]time.Duration, string, error) {
	var latencies []time.Duration
	var conference string
	for i := range count {
		conf, err := p.a.Federation().CreateConference(ctx, p.alice, fmt.Sprintf("Benchmark %d", i+1), nil)
		if err != nil {
			return nil, "", fmt.Errorf("invite cycle %d: %w", i+1, err)
		}
		conference = conf.ID
		start := time.Now()
		if _, err := p.a.Federation().Invite(ctx, p.alice, conf.ID, p.b.DID(), nil); err != nil {
			return nil, "", fmt.Errorf("invite cycle %d: %w", i+1, err)
		}
		err = waitFor(ctx, benchPoll, benchStepLimit, "the invitation to "+conf.ID+" at "+p.b.Name(), func() (bool, error) {
			return nodeState(ctx, p.b, conf.ID, p.b.DID(), "invited")
		})
		if err != nil {
			return nil, "", err
		}
		if _, _, err := p.b.Federation().Answer(ctx, p.bruno, conf.ID, true); err != nil {
			return nil, "", fmt.Errorf("invite cycle %d: accept: %w", i+1, err)
		}
		err = waitFor(ctx, benchPoll, benchStepLimit, "the acceptance of "+conf.ID+" at "+p.a.Name(), func() (bool, error) {
			return nodeState(ctx, p.a, conf.ID, p.b.DID(), "accepted")
		})
		if err != nil {
			return nil, "", err
		}
		latencies = append(latencies, time.Since(start))
	}
	return latencies, conference, nil
}

// nodeState reports whether n's copy of conference shows guest in state.
func nodeState(ctx context.Context, n *node.Node, conference, guest, state string) (bool, error) {
	cn, err := n.Store().GetConferenceNode(ctx, conference, guest)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil && cn.State == state, err
}

// outboxThroughput enqueues count lock/unlock events of conference on the
// host and returns messages per second from the first enqueue until the
// guest's replica holds the last.
func (p benchPair) outboxThroughput(ctx context.Context, conference string, count int) (float64, error) {
	start := time.Now()
	var last int64
	for i := range count {
		typ := federation.TypeLock
		if i%2 == 1 {
			typ = federation.TypeUnlock
		}
		seq, err := p.a.Federation().Moderate(ctx, p.alice, conference, typ, "")
		if err != nil {
			return 0, fmt.Errorf("outbox bench: event %d: %w", i+1, err)
		}
		last = seq
	}
	// Delivery is one message at a time per peer, so allow each a generous
	// share of time on top of a fixed margin.
	limit := benchStepLimit + time.Duration(count)*100*time.Millisecond
	err := waitFor(ctx, benchPoll, limit, fmt.Sprintf("record %d of %s at %s", last, conference, p.b.Name()), func() (bool, error) {
		c, err := p.b.Store().GetConference(ctx, conference)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil && c.HeadSeq >= last, err
	})
	if err != nil {
		return 0, err
	}
	rate := perSecond(count, time.Since(start))
	// The host records the last receipt just after the guest applied it;
	// stopping the nodes before that would cut it short.
	err = waitFor(ctx, benchPoll, benchStepLimit, "the host's outbox to empty", func() (bool, error) {
		pending, err := p.a.Store().ListOutbox(ctx, p.b.DID(), store.OutboxPending)
		return err == nil && len(pending) == 0, err
	})
	return rate, err
}

// perSecond is a rate rounded to a tenth, which is more than the noise of
// any of these measurements allows.
func perSecond(n int, d time.Duration) float64 {
	return math.Round(float64(n)/d.Seconds()*10) / 10
}

// summarize gives nearest-rank percentiles in milliseconds, rounded to the
// microsecond.
func summarize(ds []time.Duration) latencySummary {
	if len(ds) == 0 {
		return latencySummary{}
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(sorted)))) - 1
		return sorted[max(i, 0)]
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return latencySummary{P50: ms(rank(0.50)), P95: ms(rank(0.95)), Max: ms(sorted[len(sorted)-1]), N: len(sorted)}
}

// benchSchemas creates count schemas on the PostgreSQL server at base, one
// per node, and returns URLs whose search_path selects each, and a function
// that drops them.
func benchSchemas(ctx context.Context, base string, count int) ([]string, func() error, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// Neither the URL nor url.Error is quoted: they may hold a password.
		return nil, nil, usagef("--database-url must be a postgres:// URL")
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return nil, nil, fmt.Errorf("--database-url: connect to %s: %w", u.Redacted(), err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	prefix := "entente_bench_" + hex.EncodeToString(b[:])
	var schemas, urls []string
	drop := func() error {
		if len(schemas) == 0 {
			return nil
		}
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(dctx, base)
		if err != nil {
			return fmt.Errorf("drop bench schemas: connect to %s: %w", u.Redacted(), err)
		}
		defer c.Close(dctx)
		for _, s := range schemas {
			if _, err := c.Exec(dctx, "DROP SCHEMA "+s+" CASCADE"); err != nil {
				return fmt.Errorf("drop schema %s: %w", s, err)
			}
		}
		return nil
	}
	for i := range count {
		s := fmt.Sprintf("%s_%d", prefix, i+1)
		if _, err := conn.Exec(ctx, "CREATE SCHEMA "+s); err != nil {
			return nil, nil, errors.Join(fmt.Errorf("create schema %s: %w", s, err), drop())
		}
		schemas = append(schemas, s)
		q := u.Query()
		q.Set("search_path", s)
		nu := *u
		nu.RawQuery = q.Encode()
		urls = append(urls, nu.String())
	}
	return urls, drop, nil
}
