package fedbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/jackc/pgx/v5"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/localfed"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/node"
	"github.com/entente-org/entente/store"
)

// Report is the JSON that `entente bench federation` prints.
type Report struct {
	EnvelopesPerSecond float64      `json:"envelope_sign_verify_per_s"`
	InviteToAccepted   Summary      `json:"invite_to_accepted_ms"`
	OutboxPerSecond    float64      `json:"outbox_msgs_per_s"`
	OutboxMessages     int          `json:"outbox_messages"`
	Flood              *FloodReport `json:"flood,omitempty"`
	Store              string       `json:"store"`
	Cores              int          `json:"cores"`
	Go                 string       `json:"go"`
}

// Summary is in milliseconds.
type Summary struct {
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

// Run measures envelopes, invitations and the outbox between two local
// nodes, and with o.Flood the invitations again during a flood.
func Run(ctx context.Context, o Options, env Env) (_ Report, err error) {
	res := Report{Store: store.BackendSQLite, Cores: runtime.NumCPU(), Go: runtime.Version()}
	dir, err := os.MkdirTemp("", "entente-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	log := env.logger(slog.LevelWarn)

	ca, caFile, err := localfed.NewCA(dir, "bench", 24*time.Hour)
	if err != nil {
		return res, err
	}
	names := []string{"Bench Host", "Bench Guest"}
	if o.Flood != FloodNone {
		names = append(names, "Bench Flooder")
	}
	databaseURLs := make([]string, len(names))
	if o.DatabaseURL != "" {
		res.Store = store.BackendPostgres
		var drop func() error
		if databaseURLs, drop, err = benchSchemas(ctx, o.DatabaseURL, len(databaseURLs)); err != nil {
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
	defer func() { localfed.ShutdownAll(nodes) }()
	for i, name := range names {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return res, fmt.Errorf("bench node %s: %w", name, err)
		}
		n, err := localfed.Start(ctx, l, localfed.Node{
			Name: name, DataDir: filepath.Join(dir, fmt.Sprintf("node-%d", i+1)), CA: ca, CAFile: caFile,
			Log: log.With("institution", name), DatabaseURL: databaseURLs[i], Version: env.Version,
		})
		if err != nil {
			return res, fmt.Errorf("bench node %s: %w", name, err)
		}
		nodes = append(nodes, n)
	}
	if err := localfed.Trust(ctx, nodes[:2]); err != nil {
		return res, err
	}
	// Resolving each other's DID documents first keeps the first invitation
	// from paying for it.
	if err := localfed.Federate(ctx, nodes[:2]); err != nil {
		return res, err
	}
	p := benchPair{a: nodes[0], b: nodes[1]}
	if p.alice, err = localfed.AddUser(ctx, p.a, "alice", "Alice Martin"); err != nil {
		return res, err
	}
	if p.bruno, err = localfed.AddUser(ctx, p.b, "bruno", "Bruno Lefèvre"); err != nil {
		return res, err
	}

	if res.EnvelopesPerSecond, err = envelopeThroughput(ctx, p.a, o.Duration); err != nil {
		return res, err
	}
	latencies, conference, err := p.inviteCycles(ctx, o.Invites)
	if err != nil {
		return res, err
	}
	res.InviteToAccepted = Summarize(latencies)
	if o.Flood != FloodNone {
		if res.Flood, err = p.floodedInvites(ctx, nodes[2], ca.Pool(), o); err != nil {
			return res, err
		}
	}
	if res.OutboxPerSecond, err = p.outboxThroughput(ctx, conference, o.Messages); err != nil {
		return res, err
	}
	res.OutboxMessages = o.Messages
	return res, nil
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
		err = localfed.WaitFor(ctx, benchPoll, benchStepLimit, "the invitation to "+conf.ID+" at "+p.b.Name(), func() (bool, error) {
			return localfed.PeerState(ctx, p.b, conf.ID, p.b.DID(), "invited")
		})
		if err != nil {
			return nil, "", err
		}
		if _, _, err := p.b.Federation().Answer(ctx, p.bruno, conf.ID, true); err != nil {
			return nil, "", fmt.Errorf("invite cycle %d: accept: %w", i+1, err)
		}
		err = localfed.WaitFor(ctx, benchPoll, benchStepLimit, "the acceptance of "+conf.ID+" at "+p.a.Name(), func() (bool, error) {
			return localfed.PeerState(ctx, p.a, conf.ID, p.b.DID(), "accepted")
		})
		if err != nil {
			return nil, "", err
		}
		latencies = append(latencies, time.Since(start))
	}
	return latencies, conference, nil
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
	err := localfed.WaitFor(ctx, benchPoll, limit, fmt.Sprintf("record %d of %s at %s", last, conference, p.b.Name()), func() (bool, error) {
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
	err = localfed.WaitFor(ctx, benchPoll, benchStepLimit, "the host's outbox to empty", func() (bool, error) {
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

// Summarize gives nearest-rank percentiles in milliseconds, rounded to the
// microsecond.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(sorted)))) - 1
		return sorted[max(i, 0)]
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Summary{P50: ms(rank(0.50)), P95: ms(rank(0.95)), Max: ms(sorted[len(sorted)-1]), N: len(sorted)}
}

// benchSchemas creates count schemas on the PostgreSQL server at base, one
// per node, and returns URLs whose search_path selects each, and a function
// that drops them.
func benchSchemas(ctx context.Context, base string, count int) ([]string, func() error, error) {
	u, err := postgresURL(base)
	if err != nil {
		return nil, nil, err
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
