// Package cluster lets the replicas of one Entente node act as one: who is
// alive (a roster of heartbeats), which replica runs each conference
// (placement), messages every replica must see (signals and log changes),
// and the authentication of requests one replica makes to another.
//
// Everything lives in NATS with JetStream (docs/replicas.md): the roster and
// the placements are two key-value buckets, the messages are core NATS
// subjects. All names carry the node key so that several nodes can share one
// NATS server. The package knows nothing of conferences beyond their IDs: it
// does not import federation or media; internal/node wires it to them.
package cluster

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Timing of the roster: a replica writes its heartbeat every
// HeartbeatInterval; one whose last heartbeat is older than RosterTTL is
// dead (docs/replicas.md, "Roster").
const (
	HeartbeatInterval = time.Second
	RosterTTL         = 3 * time.Second
)

// ErrNoReplica is returned by Place when no live replica may take a new
// conference: every one is draining.
var ErrNoReplica = errors.New("no live replica accepts conferences")

// Replica is one process of the node as the roster knows it.
type Replica struct {
	ID           string `json:"id"`
	InternalURL  string `json:"internal_url"`
	Participants int    `json:"participants"`
	// MaxParticipants is the replica's capacity (cluster.max_participants).
	MaxParticipants int  `json:"max_participants"`
	Draining        bool `json:"draining,omitempty"`
}

// Options configure Open.
type Options struct {
	// NATSURL is the NATS server (with JetStream), e.g. nats://10.0.0.2:4222.
	NATSURL string
	// ReplicaID names this replica; unique among the node's replicas.
	ReplicaID string
	// InternalURL is where the other replicas reach this one directly.
	InternalURL string
	// NodeKey namespaces buckets and subjects, so that nodes may share one
	// NATS server: letters, digits, _ and - only (see NodeKeyFor).
	NodeKey string
	// MaxParticipants is how many participants this replica takes before
	// placement prefers others.
	MaxParticipants int
	// Secret authenticates requests between replicas (SignRequest).
	Secret []byte
}

// Cluster is this replica's membership in its node's cluster.
type Cluster struct {
	opts      Options
	log       *slog.Logger
	nc        *nats.Conn
	js        jetstream.JetStream
	roster    jetstream.KeyValue
	placement jetstream.KeyValue
	spans     spans // span.go

	mu       sync.Mutex
	self     Replica
	seen     map[string]seenReplica // by replica ID, from the roster watcher
	stop     context.CancelFunc
	done     chan struct{}
	closed   bool
	subjects string // entente.<nodekey>.
}

type seenReplica struct {
	r  Replica
	at time.Time // when this replica received the heartbeat
}

// placementRecord is the value of a placement key.
type placementRecord struct {
	Conference string `json:"conference"`
	Replica    string `json:"replica"`
}

// Open connects to NATS, checks that it has JetStream, creates the roster
// and placement buckets if needed, writes this replica's first heartbeat
// and keeps it fresh until Close.
func Open(ctx context.Context, opts Options, log *slog.Logger) (*Cluster, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.NATSURL == "" || opts.ReplicaID == "" || opts.NodeKey == "" {
		return nil, errors.New("cluster: NATSURL, ReplicaID and NodeKey are required")
	}
	if !validNodeKey(opts.NodeKey) {
		return nil, fmt.Errorf("cluster: node key %q: only letters, digits, _ and - allowed", opts.NodeKey)
	}
	if len(opts.Secret) < 32 {
		return nil, errors.New("cluster: the replica link secret must be at least 32 bytes")
	}
	if opts.MaxParticipants <= 0 {
		opts.MaxParticipants = 200
	}
	c := &Cluster{
		opts:     opts,
		log:      log.With("replica", opts.ReplicaID),
		self:     Replica{ID: opts.ReplicaID, InternalURL: opts.InternalURL, MaxParticipants: opts.MaxParticipants},
		seen:     map[string]seenReplica{},
		subjects: "entente." + opts.NodeKey + ".",
	}
	nc, err := nats.Connect(opts.NATSURL,
		nats.Name("entente "+opts.NodeKey+" "+opts.ReplicaID),
		nats.Timeout(5*time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.log.Warn("NATS disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { c.log.Info("NATS reconnected") }),
	)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to NATS at %s: %w", redact(opts.NATSURL), err)
	}
	c.nc = nc
	if err := c.openBuckets(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.heartbeat(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("NATS at %s: writing the roster: %w", redact(opts.NATSURL), err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	watcher, err := c.roster.WatchAll(wctx)
	if err != nil {
		cancel()
		nc.Close()
		return nil, fmt.Errorf("NATS at %s: watching the roster: %w", redact(opts.NATSURL), err)
	}
	c.stop, c.done = cancel, make(chan struct{})
	go c.run(wctx, watcher)
	// Wait for the watcher's first pass so that Live knows the replicas
	// already running before Open returns.
	if err := c.waitSeen(ctx, opts.ReplicaID); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) openBuckets(ctx context.Context) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return fmt.Errorf("NATS at %s: %w", redact(c.opts.NATSURL), err)
	}
	c.js = js
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(actx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("NATS at %s has no JetStream: start nats-server with -js (JetStream keeps the roster and the placements)", redact(c.opts.NATSURL))
		}
		return fmt.Errorf("NATS at %s: JetStream does not answer: %w", redact(c.opts.NATSURL), err)
	}
	c.roster, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      "entente_" + c.opts.NodeKey + "_replicas",
		Description: "Entente replicas' heartbeats",
		History:     1,
		TTL:         RosterTTL,
		Storage:     jetstream.MemoryStorage,
	})
	if err != nil {
		return fmt.Errorf("NATS at %s: roster bucket: %w", redact(c.opts.NATSURL), err)
	}
	c.placement, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      "entente_" + c.opts.NodeKey + "_placement",
		Description: "Entente conferences' replicas",
		History:     1,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("NATS at %s: placement bucket: %w", redact(c.opts.NATSURL), err)
	}
	return nil
}

// run keeps the heartbeat fresh and the roster view current until Close.
func (c *Cluster) run(ctx context.Context, w jetstream.KeyWatcher) {
	defer close(c.done)
	defer w.Stop()
	tick := time.NewTicker(HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			hctx, cancel := context.WithTimeout(ctx, HeartbeatInterval)
			if err := c.heartbeat(hctx); err != nil && ctx.Err() == nil {
				c.log.Warn("heartbeat not written", "err", err)
			}
			cancel()
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // end of the initial values
				continue
			}
			c.observe(e)
		}
	}
}

func (c *Cluster) observe(e jetstream.KeyValueEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(c.seen, e.Key())
		return
	}
	var r Replica
	if err := json.Unmarshal(e.Value(), &r); err != nil || r.ID == "" {
		c.log.Warn("roster entry unreadable", "key", e.Key())
		return
	}
	c.seen[r.ID] = seenReplica{r: r, at: time.Now()}
}

func (c *Cluster) waitSeen(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		c.mu.Lock()
		_, ok := c.seen[id]
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("NATS at %s: this replica's own heartbeat never came back from the roster", redact(c.opts.NATSURL))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *Cluster) heartbeat(ctx context.Context) error {
	c.mu.Lock()
	self := c.self
	c.mu.Unlock()
	b, _ := json.Marshal(self)
	_, err := c.roster.Put(ctx, self.ID, b)
	return err
}

// Self is this replica as it announces itself.
func (c *Cluster) Self() Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.self
}

// Live lists the replicas whose heartbeat is fresher than RosterTTL, this
// one included, ordered by ID.
func (c *Cluster) Live() []Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	var out []Replica
	for id, s := range c.seen {
		if id == c.self.ID {
			out = append(out, c.self)
			continue
		}
		if now.Sub(s.at) < RosterTTL {
			out = append(out, s.r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (c *Cluster) live(id string) (Replica, bool) {
	for _, r := range c.Live() {
		if r.ID == id {
			return r, true
		}
	}
	return Replica{}, false
}

// Suspect takes a replica out of this replica's Live view until its next
// heartbeat arrives: its internal_url refused a connection, which a
// process that died does at once, while its heartbeat needs RosterTTL to
// age out. A replica that is alive after all is back within a heartbeat.
func (c *Cluster) Suspect(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.seen[id]; ok && id != c.self.ID {
		s.at = time.Time{}
		c.seen[id] = s
		c.log.Warn("replica refused a connection; not placing on it until its next heartbeat", "suspect", id)
	}
}

// SetLoad records how many participants this replica serves; placement
// reads it from the next heartbeat.
func (c *Cluster) SetLoad(participants int) {
	c.mu.Lock()
	c.self.Participants = participants
	c.mu.Unlock()
}

// Draining reports whether Drain was called.
func (c *Cluster) Draining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.self.Draining
}

// Connected reports whether the NATS connection is up.
func (c *Cluster) Connected() bool { return c.nc.IsConnected() }

// Close stops the heartbeat and removes this replica from the roster, so
// that the others stop counting on it at once.
func (c *Cluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	if c.stop != nil {
		c.stop()
		<-c.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.roster.Delete(ctx, c.opts.ReplicaID); err != nil && c.nc.IsConnected() {
		c.log.Warn("roster entry not removed", "err", err)
	}
	c.nc.Drain()
}

// NodeKeyFor derives a node key from the node's DID: the same for every
// replica of a node, different between nodes.
func NodeKeyFor(did string) string {
	s := sum256([]byte(did))
	return hex.EncodeToString(s[:8])
}

func validNodeKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// redact drops a password from a NATS URL for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
