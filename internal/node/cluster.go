package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/cluster"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/livekit"
)

// This file makes the node's replicas one node (docs/replicas.md): each
// conference's media runs on the replica placement gives it, the others
// proxy its WebSockets there, and what one replica learns about a
// conference (a signal, a grown log) reaches the others through NATS.

// Cluster topics (subjects entente.<nodekey>.<topic>, docs/replicas.md).
const (
	topicLog     = "log"     // a conference's log grew: its ID
	topicSignals = "signals" // a verified signal: federation.Signal as JSON
	topicOutbox  = "outbox"  // a message was queued: the replica holding its lease delivers it
)

// replicaLink is this replica's side of the cluster: nil when the node is
// one process.
type replicaLink struct {
	c         *cluster.Cluster
	transport *http.Transport // to the other replicas' internal_url
	unsub     []func()
	// started is set once the node is built (Node.Start): what the other
	// replicas publish before is ignored, since the node then has no
	// clients to tell and reads the store afresh anyway.
	started atomic.Bool

	// proxyCtx ends the WebSockets this replica proxies to others when
	// cancelled (drain, shutdown): their clients reconnect through the
	// load balancer. Each cancel makes a new one for later requests.
	mu          sync.Mutex
	proxyCtx    context.Context
	stopProxies context.CancelFunc

	loadStop context.CancelFunc
	loadDone chan struct{}

	span *spanCascade // the SFU's cascade (replicatrunk.go)
}

// proxyContext is the context that ends the proxied connections of now.
func (l *replicaLink) proxyContext() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.proxyCtx
}

// endProxies ends the connections proxied so far.
func (l *replicaLink) endProxies() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopProxies()
	l.proxyCtx, l.stopProxies = context.WithCancel(context.Background())
}

// openCluster joins the node's replicas when cluster.nats_url is set. The
// link secret is derived from the node's signing key, which every replica
// reads from the database (keys.storage: database).
func (n *Node) openCluster(ctx context.Context) error {
	cc := n.cfg.Cluster
	if !cc.Enabled() {
		return nil
	}
	_, priv, err := n.keys.CurrentECDSA()
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	material, err := priv.Bytes()
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	secret, err := cluster.DeriveSecret(material)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	id := cc.ReplicaID
	if id == "" {
		if id, err = os.Hostname(); err != nil || id == "" {
			return fmt.Errorf("cluster.replica_id: empty, and the host name is unknown: %v", err)
		}
	}
	c, err := cluster.Open(ctx, cluster.Options{
		NATSURL: cc.NATSURL, ReplicaID: id, InternalURL: cc.InternalURL,
		NodeKey: cluster.NodeKeyFor(n.did), MaxParticipants: cc.MaxParticipants, Secret: secret,
	}, n.log)
	if err != nil {
		return fmt.Errorf("cluster.nats_url: %w", err)
	}
	roots, err := peerRoots(n.cfg.Federation.CAFile)
	if err != nil {
		c.Close()
		return err
	}
	link := &replicaLink{c: c, transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 5 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 16,
	}}
	link.proxyCtx, link.stopProxies = context.WithCancel(context.Background())
	for topic, fn := range map[string]func([]byte){
		topicLog: func(b []byte) {
			n.applyLogChange(string(b))
			n.syncBridge(string(b))
		},
		topicSignals: n.applyClusterSignal,
		topicOutbox:  func([]byte) { n.fed.WakeOutbox() },
	} {
		unsub, err := c.Subscribe(topic, func(b []byte) {
			if link.started.Load() {
				fn(b)
			}
		})
		if err != nil {
			c.Close()
			return fmt.Errorf("cluster.nats_url: %w", err)
		}
		link.unsub = append(link.unsub, unsub)
	}
	n.log = n.log.With("replica", id)
	n.replicas = link
	return nil
}

// Cluster is this replica's membership in the node's cluster; nil when the
// node is one process.
func (n *Node) Cluster() *cluster.Cluster {
	if n.replicas == nil {
		return nil
	}
	return n.replicas.c
}

// startLoad keeps the roster's participant count of this replica current.
func (l *replicaLink) startLoad(sessions func() int) {
	ctx, cancel := context.WithCancel(context.Background())
	l.loadStop, l.loadDone = cancel, make(chan struct{})
	go func() {
		defer close(l.loadDone)
		t := time.NewTicker(cluster.HeartbeatInterval)
		defer t.Stop()
		for {
			l.c.SetLoad(sessions())
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (l *replicaLink) close() {
	if l.span != nil {
		l.span.stop()
	}
	if l.loadStop != nil {
		l.loadStop()
		<-l.loadDone
	}
	for _, u := range l.unsub {
		u()
	}
	l.endProxies()
	l.c.Close()
	l.transport.CloseIdleConnections()
}

// publish tells the other replicas; a failure is logged, never the
// caller's: this replica has applied the change already.
func (n *Node) publish(topic string, data []byte) {
	if n.replicas == nil {
		return
	}
	if err := n.replicas.c.Publish(context.Background(), topic, data); err != nil {
		n.log.Warn("not published to the other replicas", "topic", topic, "err", err)
	}
}

// applyLogChange is what every replica does when a conference's log grows:
// the SFU rechecks who may take part, and the OnLogChange functions hear it.
func (n *Node) applyLogChange(conference string) {
	if n.sfu != nil {
		n.sfu.Recheck(conference)
	}
	n.hooksMu.Lock()
	fns := slices.Clone(n.logHooks)
	n.hooksMu.Unlock()
	for _, fn := range fns {
		fn(conference)
	}
}

// applySignal is what every replica does with a verified signal: its
// clients in the conference get it, and the OnSignal functions.
func (n *Node) applySignal(sig federation.Signal) {
	if n.sfu != nil {
		if err := n.sfu.Broadcast(sig.Conference, sig); err != nil {
			n.log.Warn("signal not broadcast", "conference", sig.Conference, "err", err)
		}
	}
	if n.livekit != nil {
		switch sig.Kind {
		case federation.SignalChat, federation.SignalChatEdit, federation.SignalChatRedact:
			n.livekit.DeliverChat(sig.Conference, livekit.ChatLine{
				ID: sig.ID, User: sig.User, Kind: sig.Kind, Text: sig.Text, Ref: sig.Ref, At: sig.At,
			})
		}
	}
	n.hooksMu.Lock()
	fns := slices.Clone(n.signalHooks)
	n.hooksMu.Unlock()
	for _, fn := range fns {
		fn(sig)
	}
}

func (n *Node) applyClusterSignal(b []byte) {
	var sig federation.Signal
	if err := json.Unmarshal(b, &sig); err != nil || sig.Conference == "" {
		n.log.Warn("unreadable signal from another replica", "err", err)
		return
	}
	n.queueForBridge(sig)
	n.applySignal(sig)
}

// routeToOwner sends a request about conference to the replica that runs
// it, and reports whether it did (or refused the request): when it returns
// false the request is this replica's to serve. A request another replica
// proxied here is served here once its link signature holds.
func (n *Node) routeToOwner(w http.ResponseWriter, r *http.Request, conference string) bool {
	return n.route(w, r, conference, true)
}

// routeToRunning sends a request about conference to the replica running
// it, if one does; unlike routeToOwner it never places the conference (a
// RoomService call on a conference without media is answered anywhere).
func (n *Node) routeToRunning(w http.ResponseWriter, r *http.Request, conference string) bool {
	return n.route(w, r, conference, false)
}

func (n *Node) route(w http.ResponseWriter, r *http.Request, conference string, place bool) bool {
	l := n.replicas
	if l == nil {
		return false
	}
	if cluster.IsSigned(r) {
		if err := l.c.Authenticate(r); err != nil {
			httpapi.WriteError(w, httpapi.Unauthorized("%v", err))
			return true
		}
		if l.c.Draining() {
			httpapi.WriteError(w, httpapi.Unavailable(time.Second, "this replica is draining; connect again"))
			return true
		}
		// The conference may have moved since the other replica looked:
		// serving it here too would split it in two.
		// A replica the conference spans serves its participants too.
		if place {
			if o, err := l.c.Place(r.Context(), conference); err == nil && o.ID != l.c.Self().ID && !n.spannedHere(r.Context(), conference) {
				httpapi.WriteError(w, httpapi.Unavailable(time.Second, "conference %s moved to another replica; connect again", conference))
				return true
			}
		}
		return false
	}
	var owner cluster.Replica
	var err error
	if place {
		// A participant goes where the conference has room: its owner,
		// or a replica it spans (spantrunk.go).
		owner, err = n.placeParticipant(r.Context(), conference)
	} else {
		var ok bool
		owner, ok, err = l.c.Owner(r.Context(), conference)
		if err == nil && !ok {
			return false
		}
	}
	if err != nil {
		// NATS is away: serving here keeps the conference usable for the
		// clients of this replica rather than refusing everyone.
		n.log.Warn("conference not placed; serving it here", "conference", conference, "err", err)
		return false
	}
	if owner.ID == l.c.Self().ID {
		return false
	}
	target, err := url.Parse(owner.InternalURL)
	if err != nil || target.Host == "" {
		httpapi.WriteError(w, httpapi.Unavailable(time.Second, "replica %s announces no usable internal_url", owner.ID))
		return true
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The client's own credentials (cookie, bearer token, LiveKit
			// token) and Host go unchanged: the owner authenticates the
			// client as this replica would have.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			l.c.SignRequest(pr.Out)
		},
		Transport: l.transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			n.log.Warn("proxy to the conference's replica failed", "conference", conference, "to", owner.ID, "err", err)
			if errors.Is(err, syscall.ECONNREFUSED) {
				// Its process is gone: the client's next try places the
				// conference on a live replica, without waiting for the
				// heartbeat to age out (docs/replicas.md, "Failover").
				l.c.Suspect(owner.ID)
			}
			httpapi.WriteError(w, httpapi.Unavailable(time.Second, "the replica running this conference cannot be reached; connect again"))
		},
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(l.proxyContext(), cancel)
	defer stop()
	proxy.ServeHTTP(w, r.WithContext(ctx))
	return true
}

// drain hands this replica's conferences to the others before it stops
// (docs/replicas.md, "Drain"): no new conference is placed here, those
// placed here are released, and every client is told to reconnect at once:
// a native client's WebSocket closes with 1012 (service restart), a LiveKit
// client gets a LeaveRequest with action RECONNECT. Their next connection,
// through the load balancer, places the conference on another replica.
// drain returns when no media session is left here, or at ctx's end.
func (n *Node) drain(ctx context.Context) {
	l := n.replicas
	if l == nil || l.c.Draining() {
		return
	}
	start := time.Now()
	l.c.Drain(ctx)
	l.endProxies()
	sent := n.sfu.Restart()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for n.sfu.Sessions() > 0 {
		select {
		case <-ctx.Done():
			n.log.Warn("drain: media sessions still open", "sessions", n.sfu.Sessions())
			return
		case <-t.C:
		}
	}
	n.log.Info("drained", "sessions_sent_away", sent, "ms", time.Since(start).Milliseconds())
}
