package media

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/netcut"
	"github.com/entente-org/entente/internal/testwait"
	dto "github.com/prometheus/client_model/go"
)

// relayedCascade is a member's way to its host through a UDP relay: the
// trunk's ICE can only go through it. The member's offer reaches the host
// without candidates, and the host's answer reaches the member with its
// loopback candidate replaced by the relay's address, so the host learns
// the member only as the relay's peer-reflexive address, and the member
// reaches the host only through the relay.
type relayedCascade struct {
	*cascadeNode
	relay *netcut.UDPRelay
}

func (c relayedCascade) Offer(ctx context.Context, conference, offer string) (string, error) {
	answer, err := c.cascadeNode.Offer(ctx, conference, withoutCandidates(offer))
	if err != nil {
		return "", err
	}
	return c.throughRelay(answer)
}

func withoutCandidates(sdp string) string {
	lines := strings.Split(sdp, "\r\n")
	out := lines[:0]
	for _, l := range lines {
		if !strings.HasPrefix(l, "a=candidate:") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n")
}

// throughRelay keeps the answer's UDP candidates on 127.0.0.1, on the
// relay's port, and points the relay at the host's port.
func (c relayedCascade) throughRelay(sdp string) (string, error) {
	lines := strings.Split(sdp, "\r\n")
	out := lines[:0]
	target := ""
	for _, l := range lines {
		if !strings.HasPrefix(l, "a=candidate:") {
			out = append(out, l)
			continue
		}
		// a=candidate:foundation component transport priority address port typ type ...
		f := strings.Fields(l)
		if len(f) < 8 || !strings.EqualFold(f[2], "udp") || f[4] != "127.0.0.1" || f[7] != "host" {
			continue
		}
		target = net.JoinHostPort(f[4], f[5])
		f[5] = strconv.Itoa(c.relay.Addr().Port)
		out = append(out, strings.Join(f, " "))
	}
	if target == "" {
		return "", fmt.Errorf("the host's answer has no loopback candidate")
	}
	if err := c.relay.SetTarget(target); err != nil {
		return "", err
	}
	return strings.Join(out, "\r\n"), nil
}

// mediaLog records, per track, what a subscriber received and when; it
// drains the client's media channel for the whole test, so that nothing is
// lost there.
type mediaLog struct {
	mu sync.Mutex
	// audio is the arrival of each audio sequence number.
	audio map[uint32]time.Time
	// layers are the arrivals per video track and layer.
	layers map[string]map[byte][]time.Time
}

func logMedia(t *testing.T, c *testClient, audio string) *mediaLog {
	m := &mediaLog{audio: map[uint32]time.Time{}, layers: map[string]map[byte][]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case r := <-c.media:
				_, layer, seq, ok := parsePayload(r.payload)
				if !ok {
					continue
				}
				now := time.Now()
				m.mu.Lock()
				if r.track == audio {
					if _, dup := m.audio[seq]; !dup {
						m.audio[seq] = now
					}
				} else {
					if m.layers[r.track] == nil {
						m.layers[r.track] = map[byte][]time.Time{}
					}
					m.layers[r.track][layer] = append(m.layers[r.track][layer], now)
				}
				m.mu.Unlock()
			}
		}
	}()
	return m
}

// since counts the packets of each layer of track received after from.
func (m *mediaLog) since(track string, from time.Time) map[byte]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[byte]int{}
	for layer, at := range m.layers[track] {
		for _, a := range at {
			if a.After(from) {
				out[layer]++
			}
		}
	}
	return out
}

// audioLoss is the fraction of the audio packets sent between the first and
// the last to arrive within [from, to] that never arrived at all.
func (m *mediaLog) audioLoss(from, to time.Time) (lost, span int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lo, hi := ^uint32(0), uint32(0)
	for seq, at := range m.audio {
		if at.After(from) && at.Before(to) {
			lo, hi = min(lo, seq), max(hi, seq)
		}
	}
	if hi < lo {
		return 0, 0
	}
	for seq := lo; seq <= hi; seq++ {
		if _, ok := m.audio[seq]; !ok {
			lost++
		}
	}
	return lost, int(hi - lo + 1)
}

func gaugeOf(t *testing.T, n *cascadeNode, name, conference, peer string) (float64, bool) {
	t.Helper()
	mfs, err := n.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsAre(m, conference, peer) {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func labelsAre(m *dto.Metric, conference, peer string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	return got["conference"] == conference && got["peer"] == peer
}

// TestTrunkAdaptsToThinLink sends two simulcast cameras, a simulcast screen
// share and audio from a member node to a subscriber on the host, through a
// relay that first passes everything, then is limited to 1.5 Mbit/s with
// 40 ms of delay and 2 % loss each way, then is lifted again. On the thin
// link the member's congestion control holds back the cameras' top layers
// (not the screen share's, not audio), the subscriber keeps both cameras at
// a lower layer, and NACKs on the trunk bring audio loss under 1 %; once the
// link is lifted the top layers come back.
func TestTrunkAdaptsToThinLink(t *testing.T) {
	const conf = "conf-thin"
	f := newFabric()
	a, b := f.node(t, "did:web:a", nil), f.node(t, "did:web:b", nil)
	f.hosts(conf, a)
	relay, err := netcut.ListenUDP("127.0.0.1:9", netcut.LinkConfig{}, netcut.LinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	b.sfu.opts.Cascade = relayedCascade{cascadeNode: b, relay: relay}

	pub := connect(t, b.testNode, conf, "bob@did:web:b", clientOptions{})
	sub := connect(t, a.testNode, conf, "ann@did:web:a", clientOptions{autoSubscribe: true})
	// About 0.1, 0.4 and 1 Mbit/s per camera layer; a lighter screen share.
	cam1 := &testTrack{tag: 'c', kind: "video", source: "camera", simulcast: true, fill: [3]int{100, 450, 1150}}
	cam2 := &testTrack{tag: 'd', kind: "video", source: "camera", simulcast: true, fill: [3]int{100, 450, 1150}}
	screen := &testTrack{tag: 's', kind: "video", source: "screen", simulcast: true, fill: [3]int{20, 80, 250}}
	audio := &testTrack{tag: 'a', kind: "audio", source: "microphone"}
	pub.publish(audio, cam1, cam2, screen)
	audioID := sub.waitTrackAdded(audio, pub.user)
	ids := map[*testTrack]string{}
	for _, tr := range []*testTrack{cam1, cam2, screen} {
		ids[tr] = sub.waitTrackAdded(tr, pub.user)
	}
	log := logMedia(t, sub, audioID)
	tk := trunkOf(t, b, conf, "did:web:a")
	host := trunkOf(t, a, conf, "did:web:b")
	if tk.cc.est == nil || host.cc.est == nil {
		t.Fatalf("estimators: member %v, host %v; want one on each side", tk.cc.est != nil, host.cc.est != nil)
	}

	topLayer := func(tr *testTrack, layer byte, within time.Duration, what string) {
		t.Helper()
		testwait.Until(t, within, func() bool {
			return log.since(ids[tr], time.Now().Add(-500*time.Millisecond))[layer] >= 20
		}, "%s: track %c not received at layer %c", what, tr.tag, layer)
	}
	for _, tr := range []*testTrack{cam1, cam2, screen} {
		topLayer(tr, 'f', minWait, "unimpaired link")
	}
	// On a starved machine the estimator can take late arrivals for
	// congestion and hold a layer back for a moment; on an unimpaired link
	// it carries them all again.
	testwait.Until(t, minWait, func() bool { return tk.cc.dropped.Load() == 0 },
		"layers held back on an unimpaired link: %d", tk.cc.dropped.Load())

	thin := func(seed uint64) netcut.LinkConfig {
		return netcut.LinkConfig{Rate: 1_500_000, Delay: 40 * time.Millisecond, Loss: 0.02, Seed: seed, Queue: 200 * time.Millisecond}
	}
	relay.Impair(thin(1), thin(2))
	impairedAt := time.Now()
	testwait.Until(t, minWait, func() bool { return tk.cc.dropped.Load() >= 2 },
		"the member held back %d layers on a 1.5 Mbit/s link, want at least the cameras' top layers", tk.cc.dropped.Load())
	t.Logf("layers held back %v after the link thinned; estimate %d bit/s", time.Since(impairedAt).Round(time.Millisecond), tk.cc.estimate.Load())

	// The estimate and its figures reach /metrics and the peer's rates.
	if v, ok := gaugeOf(t, b, "entente_media_trunk_dropped_layers", conf, "did:web:a"); !ok || v < 2 {
		t.Fatalf("entente_media_trunk_dropped_layers = %v (present %v), want at least 2", v, ok)
	}
	// Layers go as soon as the estimate falls below the demand, which may be
	// a moment before it falls within the link itself.
	var estimate float64
	var estimated bool
	if !testwait.For(20*time.Second, func() bool {
		estimate, estimated = gaugeOf(t, b, "entente_media_trunk_estimate_bps", conf, "did:web:a")
		return estimated && estimate > 0 && estimate <= 1_500_000
	}) {
		t.Fatalf("entente_media_trunk_estimate_bps = %v (present %v), want an estimate within the 1.5 Mbit/s link", estimate, estimated)
	}
	testwait.Until(t, 20*time.Second, func() bool {
		est := host.cc.peerEstimate.Load()
		return est > 0 && est <= 1_500_000
	}, "the host never heard the member's estimate in rates: %d", host.cc.peerEstimate.Load())

	// Steady state on the thin link: cameras flow below their top layer,
	// the screen share keeps its top layer, and audio arrives.
	settled := time.Now()
	var camLayers [2]map[byte]int
	testwait.Until(t, minWait, func() bool {
		if time.Since(settled) < 8*time.Second {
			return false
		}
		from := time.Now().Add(-3 * time.Second)
		camLayers = [2]map[byte]int{log.since(ids[cam1], from), log.since(ids[cam2], from)}
		for _, got := range camLayers {
			if got['q']+got['h'] < 100 {
				return false
			}
		}
		return true
	}, "cameras on the thin link: %v %v, want a lower layer flowing", camLayers[0], camLayers[1])
	lost, span := log.audioLoss(settled, time.Now())
	up, down := relay.Stats()
	t.Logf("thin link: audio lost %d of %d (%.2f %%) after recovery; cameras' last 3 s per layer %v %v; screen %v; relay up %+v down %+v; member loss %.3f",
		lost, span, 100*float64(lost)/float64(max(span, 1)), camLayers[0], camLayers[1], log.since(ids[screen], time.Now().Add(-3*time.Second)), up, down, float64(tk.cc.lossPPM.Load())/1e6)
	if span < 500 {
		t.Fatalf("only %d audio packets in %v on the thin link", span, time.Since(settled))
	}
	if float64(lost) >= 0.01*float64(span) {
		t.Fatalf("audio lost %d of %d packets on the thin link after recovery, want under 1 %%", lost, span)
	}
	// Screen shares are held back last: the screen share never crosses at
	// a lower layer than a camera.
	if sl, cl := topOf(log.since(ids[screen], time.Now().Add(-3*time.Second))), max(topOf(camLayers[0]), topOf(camLayers[1])); sl < cl {
		t.Fatalf("on the thin link the screen share's top layer is %d, below the cameras' %d: %v", sl, cl, log.since(ids[screen], time.Now().Add(-3*time.Second)))
	}
	if up.Lost == 0 {
		t.Fatalf("the relay dropped nothing at random: %+v", up)
	}

	relay.Impair(netcut.LinkConfig{}, netcut.LinkConfig{})
	liftedAt := time.Now()
	restoredBy := func() bool {
		from := time.Now().Add(-500 * time.Millisecond)
		return tk.cc.dropped.Load() == 0 && log.since(ids[cam1], from)['f'] >= 20 && log.since(ids[cam2], from)['f'] >= 20
	}
	if raceBuild {
		// Under the race detector the two nodes, the relay and the clients
		// on two cores cannot send the probes in real time: the probes see
		// the CPU as the bottleneck, as they should, and the layers may
		// stay held back. The restore is checked in the normal build.
		back := testwait.For(minWait, restoredBy)
		t.Logf("race build: top layers back after the link was lifted: %v (%v)", back, time.Since(liftedAt).Round(time.Millisecond))
		return
	}
	testwait.Until(t, 2*minWait, restoredBy, "top layers not back after the link was lifted: %d held back", tk.cc.dropped.Load())
	// The aim is 10 s. Six runs on a busy 2-core machine took 2 to 8 s,
	// but a probe can fail on scheduling noise and double the wait, so the
	// time is logged, not asserted.
	t.Logf("top layers back %v after the link was lifted; estimate %d bit/s", time.Since(liftedAt).Round(time.Millisecond), tk.cc.estimate.Load())
}

// topOf is the highest layer (0 = q) of which at least 10 packets arrived,
// -1 if none.
func topOf(got map[byte]int) int {
	top := -1
	for l, name := range []byte("qhf") {
		if got[name] >= 10 {
			top = l
		}
	}
	return top
}
