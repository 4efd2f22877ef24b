package media

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A second SFU on the same registry, or a registry that already holds one of
// the trunk metrics, is refused with an error naming what collided; neither
// panics.
func TestMetricsRegisteredTwiceIsAnError(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Options{Membership: &fakeMembership{denied: map[string]error{}}, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = New(Options{Membership: &fakeMembership{denied: map[string]error{}}, Registry: reg})
	if err == nil || !strings.HasPrefix(err.Error(), "media metrics: registry already holds them (one SFU per registry): ") {
		t.Fatalf("second SFU on one registry: %v", err)
	}

	reg = prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "entente_media_trunks", Help: "taken"}))
	_, err = New(Options{Membership: &fakeMembership{denied: map[string]error{}}, Registry: reg})
	if err == nil || !strings.HasPrefix(err.Error(), "media trunk metrics: ") || !strings.Contains(err.Error(), "entente_media_trunks") {
		t.Fatalf("trunk metric already registered: %v", err)
	}
	// The metrics of the SFU without a registry are usable all the same.
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	m.peerConnections.Inc()
}
