//go:build linux

package mediabench

import (
	"strings"
	"testing"
)

func TestMeasureFloor(t *testing.T) {
	f, err := MeasureFloor(3, 200)
	if err != nil {
		t.Fatal(err)
	}
	// 1500 rounds of ceil(64/3) = 22 fan-outs to 3 destinations, each way.
	if f.Destinations != 3 || f.DatagramBytes != 200 || f.Packets != 2*1500*22*3 {
		t.Fatalf("floor %+v", f)
	}
	// A datagram cannot be sent for nothing, nor take a millisecond.
	for name, us := range map[string]float64{"sendto": f.Sendto, "sendmmsg": f.Sendmmsg} {
		if us <= 0 || us >= 1000 {
			t.Errorf("%s: %v µs per packet", name, us)
		}
	}
}

func TestMeasureFloorRefusesItsBounds(t *testing.T) {
	for _, tc := range []struct {
		dests, size int
		want        string
	}{
		{0, 100, "between 1 and 256 destinations, got 0"},
		{257, 100, "between 1 and 256 destinations, got 257"},
		{4, 0, "datagrams of 1 to 1500 bytes, got 0"},
		{4, 1501, "datagrams of 1 to 1500 bytes, got 1501"},
	} {
		if _, err := MeasureFloor(tc.dests, tc.size); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("MeasureFloor(%d, %d): %v, want %q", tc.dests, tc.size, err, tc.want)
		}
	}
}
