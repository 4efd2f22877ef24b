package media

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// trunkMetrics counts what crosses the SFU's trunks.
type trunkMetrics struct {
	sentPackets prometheus.Counter
	sentBytes   prometheus.Counter
	recvPackets prometheus.Counter
	recvBytes   prometheus.Counter
	active      prometheus.Gauge
	ccMetrics   ccMetrics
}

// ccMetrics are the figures of each trunk's congestion control, by
// conference and peer node (trunk_cc.go).
type ccMetrics struct {
	estimate *prometheus.GaugeVec
	loss     *prometheus.GaugeVec
	dropped  *prometheus.GaugeVec
}

func newTrunkMetrics(reg prometheus.Registerer) (trunkMetrics, error) {
	auto, registered := MetricsFactory(reg)
	ts := trunkMetrics{
		sentPackets: auto.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "trunk_sent_packets_total",
			Help: "RTP packets sent on cascade trunks to other nodes.",
		}),
		sentBytes: auto.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "trunk_sent_bytes_total",
			Help: "RTP payload bytes sent on cascade trunks to other nodes.",
		}),
		recvPackets: auto.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "trunk_received_packets_total",
			Help: "RTP packets received on cascade trunks from other nodes.",
		}),
		recvBytes: auto.NewCounter(prometheus.CounterOpts{
			Namespace: "entente", Subsystem: "media", Name: "trunk_received_bytes_total",
			Help: "RTP payload bytes received on cascade trunks from other nodes.",
		}),
		active: auto.NewGauge(prometheus.GaugeOpts{
			Namespace: "entente", Subsystem: "media", Name: "trunks",
			Help: "Cascade trunks currently open.",
		}),
		ccMetrics: ccMetrics{
			estimate: auto.NewGaugeVec(prometheus.GaugeOpts{
				Namespace: "entente", Subsystem: "media", Name: "trunk_estimate_bps",
				Help: "Congestion control's estimate of what a trunk carries towards its peer node, in bits/s.",
			}, []string{"conference", "peer"}),
			loss: auto.NewGaugeVec(prometheus.GaugeOpts{
				Namespace: "entente", Subsystem: "media", Name: "trunk_loss_ratio",
				Help: "Fraction of the packets sent on a trunk that its peer did not receive, before NACK recovery.",
			}, []string{"conference", "peer"}),
			dropped: auto.NewGaugeVec(prometheus.GaugeOpts{
				Namespace: "entente", Subsystem: "media", Name: "trunk_dropped_layers",
				Help: "Simulcast layers a trunk holds back because they do not fit its estimate.",
			}, []string{"conference", "peer"}),
		},
	}
	if err := registered(); err != nil {
		return trunkMetrics{}, fmt.Errorf("media trunk metrics: %w", err)
	}
	return ts, nil
}

// TrunkStats is what crossed the trunks of an SFU since it started.
type TrunkStats struct {
	Trunks          int
	PacketsSent     uint64
	BytesSent       uint64
	PacketsReceived uint64
	BytesReceived   uint64
}

// TrunkStats sums the traffic of this SFU's trunks; bytes are RTP payload
// bytes, comparable with the wanted layers' bitrates.
func (s *SFU) TrunkStats() TrunkStats {
	ts := s.trunks
	ts.mu.Lock()
	n := len(ts.trunks)
	ts.mu.Unlock()
	return TrunkStats{
		Trunks:          n,
		PacketsSent:     uint64(counterOf(ts.sentPackets)),
		BytesSent:       uint64(counterOf(ts.sentBytes)),
		PacketsReceived: uint64(counterOf(ts.recvPackets)),
		BytesReceived:   uint64(counterOf(ts.recvBytes)),
	}
}

func counterOf(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
