package fedbench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/localfed"
	"github.com/entente-org/entente/internal/node"
	"github.com/entente-org/entente/store"
)

// Flood modes of `entente bench federation --flood` (Options.Flood): while invitations are
// measured a second time, a third local node sends both measured nodes
// signed requests of --flood-body bytes (1 MiB by default) as fast as its
// workers can.
//   - untrusted: neither node trusts the flooder; every request is refused
//     (403) on its headers, before its body is read.
//   - trusted: both trust it; its requests verify, and beyond its per-peer
//     rate they are refused (429) before their body is read; within it they
//     are read and refused for what they say.
const (
	FloodNone      = "none"
	FloodUntrusted = "untrusted"
	FloodTrusted   = "trusted"

	maxFloodWorkers  = 64
	maxFloodRequests = 10_000_000
	// MaxFloodBody is the largest body of a flood request: the most a node
	// takes. minFloodBody holds the padded envelope.
	MaxFloodBody = 1 << 20
	minFloodBody = 4 << 10
	// floodResign is how often a worker signs its request anew; in between
	// it sends the same signed request again, as an attacker replaying one
	// signature within its lifetime would, so the flood costs the flooder
	// no signing or hashing of its own.
	floodResign = time.Second
)

// FloodReport is the "flood" object that `entente bench federation` prints.
type FloodReport struct {
	Mode      string  `json:"mode"`
	Workers   int     `json:"workers"`
	BodyBytes int     `json:"body_bytes"`
	Requests  int64   `json:"requests"`
	PerSecond float64 `json:"requests_per_s"`
	// Statuses counts the answers by HTTP status; "error" counts requests
	// that got none.
	Statuses map[string]int64 `json:"statuses"`
	// InviteToAccepted is the invitation cycle measured during the flood.
	InviteToAccepted Summary `json:"invite_to_accepted_ms"`
}

// flood is a running flood from one node to targets.
type flood struct {
	from    *node.Node
	targets []*node.Node
	roots   *x509.CertPool
	max     int64
	body    int // bytes per request

	sent     atomic.Int64
	mu       sync.Mutex
	statuses map[string]int64
}

// run sends requests with workers goroutines until ctx ends or max requests
// were sent, and returns how many it sent and for how long.
func (f *flood) run(ctx context.Context, workers int) (int64, time.Duration) {
	f.statuses = map[string]int64{}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		target := f.targets[w%len(f.targets)]
		wg.Go(func() { f.worker(ctx, target) })
	}
	wg.Wait()
	return f.sent.Load(), time.Since(start)
}

func (f *flood) worker(ctx context.Context, target *node.Node) {
	// A connection of its own per worker, as separate attackers would have.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: benchStepLimit}
	url := target.FederationEndpoint() + "/inbox"
	var (
		body   []byte
		header http.Header
		signed time.Time
	)
	for ctx.Err() == nil && f.sent.Add(1) <= f.max {
		if time.Since(signed) >= floodResign {
			var err error
			if body, header, err = f.request(target, url); err != nil {
				f.count("error")
				return
			}
			signed = time.Now()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			f.count("error")
			return
		}
		req.Header = header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				f.count("error")
			}
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		f.count(strconv.Itoa(resp.StatusCode))
	}
}

// request is a signed message of f.body bytes from the flooder to target: an
// acceptance of a conference that does not exist, padded with spaces.
func (f *flood) request(target *node.Node, url string) ([]byte, http.Header, error) {
	now := time.Now()
	p, err := federation.MarshalPayload(federation.Payload{
		ID: federation.NewMessageID(), Type: federation.TypeAccept, Origin: f.from.DID(), Destination: target.DID(),
		Sender: f.from.DID(), Conference: federation.NewConferenceID(),
		Created: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli(), Content: []byte(`{}`),
	})
	if err != nil {
		return nil, nil, err
	}
	env, err := federation.Seal(f.from.DID(), f.from.Keys(), p)
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, nil, err
	}
	if len(b) > f.body {
		return nil, nil, fmt.Errorf("flood envelope of %d bytes is over %d", len(b), f.body)
	}
	body := append(b, bytes.Repeat([]byte(" "), f.body-len(b))...)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	frag, priv, err := f.from.Keys().CurrentECDSA()
	if err != nil {
		return nil, nil, err
	}
	if err := federation.SignRequest(req, body, f.from.DID()+"#"+frag, priv, now); err != nil {
		return nil, nil, err
	}
	return body, req.Header, nil
}

func (f *flood) count(status string) {
	f.mu.Lock()
	f.statuses[status]++
	f.mu.Unlock()
}

// trustFlooder puts the flooder on the trust list of each target, as an
// ordinary peer that may not invite.
func trustFlooder(ctx context.Context, from *node.Node, targets []*node.Node) error {
	for _, n := range targets {
		err := federation.TrustList{Store: n.Store()}.Add(ctx, store.Peer{DID: from.DID(), Name: from.Name(), AddedAt: time.Now().UTC()})
		if err != nil {
			return fmt.Errorf("%s trusting %s: %w", n.Name(), from.Name(), err)
		}
	}
	return nil
}

// floodedInvites measures count invitation cycles of p while from floods
// both nodes of p in mode.
func (p benchPair) floodedInvites(ctx context.Context, from *node.Node, roots *x509.CertPool, o Options) (*FloodReport, error) {
	mode, workers, count, max := o.Flood, o.FloodWorkers, o.Invites, o.FloodRequests
	if mode == FloodTrusted {
		if err := trustFlooder(ctx, from, []*node.Node{p.a, p.b}); err != nil {
			return nil, err
		}
	}
	f := &flood{from: from, targets: []*node.Node{p.a, p.b}, roots: roots, max: max, body: o.FloodBody}
	fctx, stop := context.WithTimeout(ctx, maxBenchDuration)
	defer stop()
	var (
		sent int64
		took time.Duration
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		sent, took = f.run(fctx, workers)
	}()
	// The flood is in full swing before the first invitation.
	err := localfed.WaitFor(ctx, benchPoll, benchStepLimit, "the flood to start", func() (bool, error) {
		return f.sent.Load() >= int64(2*workers), nil
	})
	var latencies []time.Duration
	if err == nil {
		latencies, _, err = p.inviteCycles(ctx, count)
	}
	stop()
	<-done
	if err != nil {
		return nil, err
	}
	sent = min(sent, max)
	return &FloodReport{
		Mode: mode, Workers: workers, BodyBytes: o.FloodBody, Requests: sent, PerSecond: perSecond(int(sent), took),
		Statuses: f.statuses, InviteToAccepted: Summarize(latencies),
	}, nil
}
