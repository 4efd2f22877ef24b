package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/store"
)

// activityScrapeTimeout bounds the store queries of one scrape, well within
// Prometheus' default scrape timeout of 10 s.
const activityScrapeTimeout = 3 * time.Second

// activityCollector exposes what the node is doing, counted in the store at
// each scrape (conferences, participants, the outbox), and the federation's
// delivery outcomes. A store that cannot answer costs only its own series:
// the failure is logged and the rest of /metrics is served.
type activityCollector struct {
	store store.Store
	did   string
	fed   *federation.Service
	now   func() time.Time
	log   *slog.Logger

	conferences, participants, outbox, oldestPending, deliveries, leases *prometheus.Desc
}

func newActivityCollector(n *Node) *activityCollector {
	return &activityCollector{
		store: n.store, did: n.did, fed: n.fed, now: n.now, log: n.log,
		conferences: prometheus.NewDesc("entente_conferences",
			"Conferences not ended that this node hosts (role host) or takes part in as a member node (role member).",
			[]string{"role"}, nil),
		participants: prometheus.NewDesc("entente_conference_participants",
			"Participants of the conferences not ended that this node knows, in the call (joined) or in a lobby (waiting).",
			[]string{"state"}, nil),
		outbox: prometheus.NewDesc("entente_federation_outbox_messages",
			"Messages in the federation outbox, by state (pending, delivered, failed, expired).",
			[]string{"state"}, nil),
		oldestPending: prometheus.NewDesc("entente_federation_outbox_oldest_pending_age_seconds",
			"Age of the oldest message still pending in the federation outbox; 0 when none is pending.",
			nil, nil),
		deliveries: prometheus.NewDesc("entente_federation_deliveries_total",
			"Federation outbox delivery attempts since the node started, by result (delivered, retried, throttled, refused, expired).",
			[]string{"result"}, nil),
		leases: prometheus.NewDesc("entente_federation_delivery_leases",
			"Peers whose outbox delivery lease this process holds: of a node's replicas, it alone delivers to them.",
			nil, nil),
	}
}

func (c *activityCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.conferences
	ch <- c.participants
	ch <- c.outbox
	ch <- c.oldestPending
	ch <- c.deliveries
	ch <- c.leases
}

func (c *activityCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.fed.DeliveryStats()
	for result, v := range map[string]uint64{
		"delivered": d.Delivered, "retried": d.Retried, "throttled": d.Throttled, "refused": d.Refused, "expired": d.Expired,
	} {
		ch <- prometheus.MustNewConstMetric(c.deliveries, prometheus.CounterValue, float64(v), result)
	}
	ch <- prometheus.MustNewConstMetric(c.leases, prometheus.GaugeValue, float64(c.fed.DeliveryLeases()))

	ctx, cancel := context.WithTimeout(context.Background(), activityScrapeTimeout)
	defer cancel()
	a, err := c.store.Activity(ctx, c.did)
	if err != nil {
		c.log.Warn("metrics: the store did not answer; conference and outbox gauges left out of this scrape", "err", err)
		return
	}
	gauge := func(desc *prometheus.Desc, v int64, label ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v), label...)
	}
	gauge(c.conferences, a.HostedConferences, "host")
	gauge(c.conferences, a.MemberConferences, "member")
	gauge(c.participants, a.Participants-a.Waiting, "joined")
	gauge(c.participants, a.Waiting, "waiting")
	for state, v := range a.Outbox {
		gauge(c.outbox, v, state)
	}
	age := 0.0
	if !a.OldestPending.IsZero() {
		age = max(c.now().Sub(a.OldestPending).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.oldestPending, prometheus.GaugeValue, age)
}
