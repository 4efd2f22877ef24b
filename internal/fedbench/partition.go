package fedbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/localfed"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/internal/netcut"
	"github.com/entente-org/entente/internal/node"
	"github.com/entente-org/entente/store"
)

const (
	// partitionChatEvery and partitionLogEvery pace what each side writes
	// during the cut, so that the work is bounded by the cut's length.
	partitionChatEvery = time.Second
	partitionLogEvery  = 5 * time.Second
	// partitionPoll is how often convergence is checked; it bounds the
	// error of the times measured.
	partitionPoll = 5 * time.Millisecond
	// partitionRecoveryLimit is the longest the measurement waits after the
	// heal, longer than any backoff the outbox may have grown (5 min).
	partitionRecoveryLimit = 6 * time.Minute
)

// PartitionReport is the JSON that `entente bench federation --partition`
// prints. Times are in milliseconds from the heal.
type PartitionReport struct {
	PartitionSeconds float64 `json:"partition_s"`
	// ReplicaConverged is when the guest's replica had the host's head.
	ReplicaConverged float64 `json:"replica_converged_after_heal_ms"`
	LogEventsInCut   int     `json:"log_events_during_cut"`
	// ChatComplete is when the last line written during the cut arrived on
	// the other side (or -1 when some never did).
	ChatComplete   float64 `json:"chat_complete_after_heal_ms"`
	ChatSent       int     `json:"chat_sent_during_cut"`
	ChatArrived    int     `json:"chat_arrived"`
	ChatExpired    int     `json:"chat_expired"`
	ChatDuplicated int     `json:"chat_duplicated"`
	ChatReordered  int     `json:"chat_out_of_order"`
	Store          string  `json:"store"`
	Cores          int     `json:"cores"`
	Go             string  `json:"go"`
}

// arrivals records, per signal id, when and how often a node handed it to
// its clients, and in which order.
type arrivals struct {
	mu    sync.Mutex
	order []string
	at    map[string]time.Time
	count map[string]int
}

func (a *arrivals) add(s federation.Signal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.count[s.ID] == 0 {
		a.at[s.ID] = time.Now()
	}
	a.count[s.ID]++
	a.order = append(a.order, s.ID)
}

// partitionSide is one node, the proxy in front of it, its user and the
// chat lines it wrote during the cut.
type partitionSide struct {
	n     *node.Node
	cut   *netcut.Proxy
	user  localuser.User
	got   *arrivals
	wrote []string // signal ids, in order
}

// RunPartition measures how a federation of two nodes recovers from a
// network partition of o.Partition (see PartitionReport).
func RunPartition(ctx context.Context, o Options, env Env) (_ PartitionReport, err error) {
	res := PartitionReport{PartitionSeconds: o.Partition.Seconds(), Store: store.BackendSQLite, Cores: runtime.NumCPU(), Go: runtime.Version()}
	dir, err := os.MkdirTemp("", "entente-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	// The cut makes both nodes warn, as they should; only errors matter here.
	log := env.logger(slog.LevelError)
	ca, caFile, err := localfed.NewCA(dir, "bench", 24*time.Hour)
	if err != nil {
		return res, err
	}
	databaseURLs := []string{"", ""}
	if o.DatabaseURL != "" {
		res.Store = store.BackendPostgres
		var drop func() error
		if databaseURLs, drop, err = benchSchemas(ctx, o.DatabaseURL, len(databaseURLs)); err != nil {
			return res, err
		}
		defer func() {
			if dropErr := drop(); dropErr != nil && err == nil {
				err = dropErr
			}
		}()
	}

	var sides []*partitionSide
	defer func() {
		var wg sync.WaitGroup
		for _, s := range sides {
			wg.Go(func() { s.n.Shutdown(context.Background()) })
		}
		wg.Wait()
		for _, s := range sides {
			s.cut.Close()
		}
	}()
	for i, name := range []string{"Bench Host", "Bench Guest"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return res, fmt.Errorf("bench node %s: %w", name, err)
		}
		cut, err := netcut.Listen(l.Addr().String())
		if err != nil {
			l.Close()
			return res, fmt.Errorf("bench node %s: %w", name, err)
		}
		n, err := localfed.Start(ctx, l, localfed.Node{
			Name: name, DataDir: filepath.Join(dir, fmt.Sprintf("node-%d", i+1)), CA: ca, CAFile: caFile,
			Log: log.With("institution", name), DatabaseURL: databaseURLs[i], PublicAddr: cut.Addr(), Version: env.Version,
		})
		if err != nil {
			cut.Close()
			return res, fmt.Errorf("bench node %s: %w", name, err)
		}
		s := &partitionSide{n: n, cut: cut, got: &arrivals{at: map[string]time.Time{}, count: map[string]int{}}}
		n.OnSignal(s.got.add)
		sides = append(sides, s)
	}
	host, guest := sides[0], sides[1]
	nodes := []*node.Node{host.n, guest.n}
	if err := localfed.Trust(ctx, nodes); err != nil {
		return res, err
	}
	if err := localfed.Federate(ctx, nodes); err != nil {
		return res, err
	}
	if host.user, err = localfed.AddUser(ctx, host.n, "alice", "Alice Martin"); err != nil {
		return res, err
	}
	if guest.user, err = localfed.AddUser(ctx, guest.n, "bruno", "Bruno Lefèvre"); err != nil {
		return res, err
	}
	conference, err := partitionCall(ctx, host, guest)
	if err != nil {
		return res, err
	}

	// The cut: both directions, silently, while both sides write.
	host.cut.Cut()
	guest.cut.Cut()
	end := time.Now().Add(o.Partition)
	chat := time.NewTicker(partitionChatEvery)
	defer chat.Stop()
	var lastLog time.Time // the first change comes with the cut
	for i := 0; time.Now().Before(end); i++ {
		for _, s := range sides {
			sig, err := s.n.Federation().SendSignal(ctx, s.user, conference, federation.SignalContent{
				Kind: federation.SignalChat, Text: fmt.Sprintf("%s, line %d of the cut", s.user.DisplayName, i+1)})
			if err != nil {
				return res, fmt.Errorf("chat during the cut: %w", err)
			}
			s.wrote = append(s.wrote, sig.ID)
		}
		if time.Since(lastLog) >= partitionLogEvery {
			typ := federation.TypeLock
			if res.LogEventsInCut%2 == 1 {
				typ = federation.TypeUnlock
			}
			if _, err := host.n.Federation().Moderate(ctx, host.user, conference, typ, ""); err != nil {
				return res, fmt.Errorf("log event during the cut: %w", err)
			}
			res.LogEventsInCut++
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-chat.C:
		}
	}
	host.cut.Heal()
	guest.cut.Heal()
	healed := time.Now()

	err = localfed.WaitFor(ctx, partitionPoll, partitionRecoveryLimit, "the guest's replica to converge", func() (bool, error) {
		h, err := host.n.Store().GetConference(ctx, conference)
		if err != nil {
			return false, err
		}
		g, err := guest.n.Store().GetConference(ctx, conference)
		return err == nil && g.HeadSeq == h.HeadSeq && g.HeadHash == h.HeadHash, err
	})
	if err != nil {
		return res, err
	}
	res.ReplicaConverged = msSince(healed)
	// Every line either arrives or its message ends undelivered; then both
	// outboxes are empty, and nothing more can arrive.
	err = localfed.WaitFor(ctx, partitionPoll, partitionRecoveryLimit, "both outboxes to empty", func() (bool, error) {
		for _, s := range sides {
			n, err := s.n.Store().CountOutbox(ctx, store.OutboxPending)
			if err != nil || n != 0 {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return res, err
	}
	res.ChatComplete = 0
	for _, pair := range [][2]*partitionSide{{host, guest}, {guest, host}} {
		from, to := pair[0], pair[1]
		if err := countChat(ctx, &res, from, to, healed); err != nil {
			return res, err
		}
	}
	return res, nil
}

// partitionCall makes a conference of host's user that guest's user has
// accepted and both have joined, and waits until the guest's replica and
// both outboxes have settled.
func partitionCall(ctx context.Context, host, guest *partitionSide) (string, error) {
	conf, err := host.n.Federation().CreateConference(ctx, host.user, "Partition benchmark", nil)
	if err != nil {
		return "", err
	}
	if _, err := host.n.Federation().Invite(ctx, host.user, conf.ID, guest.n.DID(), nil); err != nil {
		return "", err
	}
	err = localfed.WaitFor(ctx, partitionPoll, benchStepLimit, "the invitation at the guest", func() (bool, error) {
		return localfed.PeerState(ctx, guest.n, conf.ID, guest.n.DID(), "invited")
	})
	if err != nil {
		return "", err
	}
	if _, _, err := guest.n.Federation().Answer(ctx, guest.user, conf.ID, true); err != nil {
		return "", err
	}
	for _, s := range []*partitionSide{host, guest} {
		if _, _, err := s.n.Federation().Join(ctx, s.user, conf.ID); err != nil {
			return "", fmt.Errorf("%s joins: %w", s.user.ID, err)
		}
	}
	err = localfed.WaitFor(ctx, partitionPoll, benchStepLimit, "both participants at the guest", func() (bool, error) {
		v, err := guest.n.Federation().ConferenceDetail(ctx, conf.ID)
		return err == nil && len(v.Participants) == 2, nil
	})
	if err != nil {
		return "", err
	}
	err = localfed.WaitFor(ctx, partitionPoll, benchStepLimit, "both outboxes to empty", func() (bool, error) {
		for _, s := range []*partitionSide{host, guest} {
			n, err := s.n.Store().CountOutbox(ctx, store.OutboxPending)
			if err != nil || n != 0 {
				return false, err
			}
		}
		return true, nil
	})
	return conf.ID, err
}

// countChat adds to res what became of the lines from wrote during the cut
// at to: arrived (once each, in order), duplicated, or expired undelivered.
func countChat(ctx context.Context, res *PartitionReport, from, to *partitionSide, healed time.Time) error {
	to.got.mu.Lock()
	defer to.got.mu.Unlock()
	index := make(map[string]int, len(from.wrote))
	for i, id := range from.wrote {
		index[id] = i
	}
	res.ChatSent += len(from.wrote)
	for _, id := range from.wrote {
		switch c := to.got.count[id]; {
		case c > 0:
			res.ChatArrived++
			res.ChatDuplicated += c - 1
			if res.ChatComplete >= 0 {
				res.ChatComplete = max(res.ChatComplete, float64(to.got.at[id].Sub(healed).Microseconds())/1000)
			}
		default:
			res.ChatComplete = -1
		}
	}
	// Order: a line that arrives after a line written later is out of
	// order (counted at its first arrival; repeats are duplicates).
	last, seen := -1, map[string]bool{}
	for _, id := range to.got.order {
		i, ok := index[id]
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		if i < last {
			res.ChatReordered++
		}
		last = max(last, i)
	}
	// Lines that did not arrive: the host's relays and the guest's signals
	// to the host that expired in their outbox.
	expired, err := from.n.Store().ListOutbox(ctx, to.n.DID(), store.OutboxExpired)
	if err != nil {
		return err
	}
	failed, err := from.n.Store().ListOutbox(ctx, to.n.DID(), store.OutboxFailed)
	if err != nil {
		return err
	}
	res.ChatExpired += len(expired)
	if len(failed) > 0 {
		return errors.New(from.n.Name() + " failed " + fmt.Sprint(len(failed)) + " messages for good: " + failed[0].LastError)
	}
	return nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }
