package media

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are created even without a registry, so the hot path never checks
// for nil.
type metrics struct {
	forwardedPackets *prometheus.CounterVec
	forwardedBytes   *prometheus.CounterVec
	nackAnswered     prometheus.Counter
	nackMissed       prometheus.Counter
	keyframeRequests prometheus.Counter
	malformed        *prometheus.CounterVec
	peerConnections  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		forwardedPackets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "forwarded_packets_total",
			Help: "RTP packets forwarded to subscribers, by media kind.",
		}, []string{"kind"}),
		forwardedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "forwarded_bytes_total",
			Help: "RTP payload bytes forwarded to subscribers, by media kind.",
		}, []string{"kind"}),
		nackAnswered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "nack_retransmissions_total",
			Help: "Packets retransmitted from the packet cache in answer to a subscriber's NACK.",
		}),
		nackMissed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "nack_cache_misses_total",
			Help: "NACKed packets no longer in the packet cache.",
		}),
		keyframeRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "keyframe_requests_sent_total",
			Help: "PLIs sent to publishers after merging and rate limiting.",
		}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "malformed_packets_total",
			Help: "RTP or RTCP packets from clients that could not be parsed and were dropped.",
		}, []string{"protocol"}),
		peerConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "entente", Subsystem: "media", Name: "peer_connections",
			Help: "Peer connections currently open with clients.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.forwardedPackets, m.forwardedBytes, m.nackAnswered,
		m.nackMissed, m.keyframeRequests, m.malformed, m.peerConnections} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, fmt.Errorf("media metrics: registry already holds them (one SFU per registry): %w", err)
			}
			return nil, fmt.Errorf("media metrics: %w", err)
		}
	}
	return m, nil
}
