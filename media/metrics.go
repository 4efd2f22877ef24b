package media

import (
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
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
	// The shared media socket's sender (udpbatch.go).
	udpSent    prometheus.Counter
	udpBatches prometheus.Counter
	udpFull    prometheus.Counter
	udpErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	auto, registered := MetricsFactory(reg)
	m := &metrics{
		forwardedPackets: auto.NewCounterVec(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "forwarded_packets_total",
			Help: "RTP packets forwarded to subscribers, by media kind.",
		}, []string{"kind"}),
		forwardedBytes: auto.NewCounterVec(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "forwarded_bytes_total",
			Help: "RTP payload bytes forwarded to subscribers, by media kind.",
		}, []string{"kind"}),
		nackAnswered: auto.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "nack_retransmissions_total",
			Help: "Packets retransmitted from the packet cache in answer to a subscriber's NACK.",
		}),
		nackMissed: auto.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "nack_cache_misses_total",
			Help: "NACKed packets no longer in the packet cache.",
		}),
		keyframeRequests: auto.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "keyframe_requests_sent_total",
			Help: "PLIs sent to publishers after merging and rate limiting.",
		}),
		malformed: auto.NewCounterVec(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "malformed_packets_total",
			Help: "RTP or RTCP packets from clients that could not be parsed and were dropped.",
		}, []string{"protocol"}),
		peerConnections: auto.NewGauge(prometheus.GaugeOpts{
			Namespace: "entente", Subsystem: "media", Name: "peer_connections",
			Help: "Peer connections currently open with clients.",
		}),
		udpSent: auto.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "udp_sent_datagrams_total",
			Help: "Datagrams sent from the shared media socket (media.udp_port).",
		}),
		udpBatches: auto.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "udp_send_batches_total",
			Help: "System calls sending the shared media socket's datagrams (sendmmsg for a batch, sendto for a datagram sent at once): sent datagrams over calls is the mean batch.",
		}),
		udpFull: auto.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "udp_send_queue_full_total",
			Help: "Times a write to the shared media socket waited for room in its sender's queue: the node sends more than the sender carries.",
		}),
		udpErrors: auto.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "udp_send_errors_total",
			Help: "Datagrams of the shared media socket the kernel refused to send (an unreachable destination).",
		}),
	}
	if err := registered(); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			return nil, fmt.Errorf("media metrics: registry already holds them (one SFU per registry): %w", err)
		}
		return nil, fmt.Errorf("media metrics: %w", err)
	}
	// Every series exists from the start, at 0, so that a dashboard's
	// rate() sees the first packet and a query never names a missing one.
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		m.forwardedPackets.WithLabelValues(kind.String())
		m.forwardedBytes.WithLabelValues(kind.String())
	}
	m.malformed.WithLabelValues("rtp")
	m.malformed.WithLabelValues("rtcp")
	return m, nil
}

// MetricsFactory makes collectors registered on reg, or on no registry when
// reg is nil; the node's own metrics are made with it too. promauto
// registers with MustRegister, which panics on a collector already
// registered; through MetricsFactory that is an error, which registered
// reports (the first one; nothing is registered after it).
func MetricsFactory(reg prometheus.Registerer) (auto promauto.Factory, registered func() error) {
	if reg == nil {
		return promauto.With(nil), func() error { return nil }
	}
	r := &checkedRegisterer{Registerer: reg}
	return promauto.With(r), func() error { return r.err }
}

// checkedRegisterer keeps the first error of MustRegister instead of
// panicking, and registers nothing after it.
type checkedRegisterer struct {
	prometheus.Registerer
	err error
}

func (r *checkedRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if r.err != nil {
			return
		}
		r.err = r.Register(c)
	}
}
