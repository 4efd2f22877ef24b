package media

import "testing"

// TestHoldBackOrder checks the order in which layers are held back when a
// trunk's estimate falls: cameras' highest layers first, screen shares
// only once cameras are at their lowest, never audio or a lowest layer; and
// the reverse order when they come back.
func TestHoldBackOrder(t *testing.T) {
	three := layerSet(0).with(0).with(1).with(2)
	tracks := []ccTrack{
		{id: "audio", audio: true, wanted: layerSet(0).with(0), rates: [maxLayers]uint64{50_000}},
		{id: "cam1", top: 2, cap: 2, wanted: layerSet(0).with(2), rates: [maxLayers]uint64{100_000, 400_000, 1_000_000}},
		{id: "cam2", top: 2, cap: 2, wanted: three, rates: [maxLayers]uint64{100_000, 400_000, 1_000_000}},
		{id: "screen", screen: true, top: 2, cap: 2, wanted: layerSet(0).with(2), rates: [maxLayers]uint64{20_000, 80_000, 250_000}},
	}
	var order []string
	for {
		k := nextToDrop(tracks)
		if k == nil {
			break
		}
		k.cap--
		order = append(order, k.id+"<"+string("qhf"[k.cap+1]))
	}
	want := []string{"cam1<f", "cam2<f", "cam1<h", "cam2<h", "screen<f", "screen<h"}
	if len(order) != len(want) {
		t.Fatalf("held back %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("held back %v, want %v", order, want)
		}
	}
	// What crosses under the caps: each wanted layer above a cap becomes
	// the cap, audio stays.
	if got := tracks[2].wanted.capped(tracks[2].cap); got != layerSet(0).with(0) {
		t.Fatalf("cam2 crosses %v at cap %d, want [0]", got.list(), tracks[2].cap)
	}
	if got := tracks[0].cost(0); got != 50_000 {
		t.Fatalf("audio costs %d, want 50000", got)
	}
	var back []string
	for {
		k := nextToRestore(tracks)
		if k == nil {
			break
		}
		k.cap++
		back = append(back, k.id+">"+string("qhf"[k.cap]))
	}
	wantBack := []string{"screen>h", "screen>f", "cam1>h", "cam2>h", "cam1>f", "cam2>f"}
	for i := range wantBack {
		if i >= len(back) || back[i] != wantBack[i] {
			t.Fatalf("restored %v, want %v", back, wantBack)
		}
	}
}

// TestProbePacketsAreDropped checks that a probe packet is recognised as
// such and forwarded media is not.
func TestProbePacketsAreDropped(t *testing.T) {
	probe := []byte{0xa0, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1}
	media := []byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xde, 0xad}
	if !isProbe(probe) || isProbe(media) || isProbe(nil) {
		t.Fatalf("isProbe: probe %v, media %v, empty %v; want true, false, false", isProbe(probe), isProbe(media), isProbe(nil))
	}
}
