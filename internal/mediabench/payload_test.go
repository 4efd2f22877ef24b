package mediabench

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		build    func() []byte
		parse    func([]byte) (parsed, error)
		size     int
		keyframe bool
		seq      uint32
	}{
		{"video keyframe", func() []byte { return appendVideoPayload(nil, 60, 123456789, true, 300) }, parseVideoPayload, 300, true, 60},
		{"video delta", func() []byte { return appendVideoPayload(nil, 61, 123456789, false, 1100) }, parseVideoPayload, 1100, false, 61},
		{"audio", func() []byte { return appendAudioPayload(nil, 61, 123456789, 120) }, parseAudioPayload, 120, false, 61},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.build()
			if len(b) != tc.size {
				t.Fatalf("size %d, want %d", len(b), tc.size)
			}
			p, err := tc.parse(b)
			if err != nil {
				t.Fatal(err)
			}
			want := parsed{seq: tc.seq, sentNS: 123456789, keyframe: tc.keyframe}
			if p != want {
				t.Fatalf("parsed %+v, want %+v", p, want)
			}
		})
	}
}

// The SFU's keyframe detection reads the VP8 payload descriptor and the P
// bit of the frame tag; these are the bytes it sees.
func TestVideoPayloadIsValidVP8(t *testing.T) {
	key := appendVideoPayload(nil, 0x1234, 1, true, 300)
	delta := appendVideoPayload(nil, 0x1234, 1, false, 300)
	// X=1 S=1 PID=0; I=1; 15-bit picture ID with M=1.
	for _, b := range [][]byte{key, delta} {
		if b[0] != 0x90 || b[1] != 0x80 || b[2] != 0x80|0x12 || b[3] != 0x34 {
			t.Fatalf("descriptor % x", b[:4])
		}
	}
	if key[4]&0x01 != 0 || key[7] != 0x9d || key[8] != 0x01 || key[9] != 0x2a {
		t.Fatalf("keyframe header % x", key[4:10])
	}
	if delta[4]&0x01 != 1 {
		t.Fatalf("delta frame tag %#x has P=0", delta[4])
	}
}

func TestParseRefusesForeignPayloads(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     []byte
		parse func([]byte) (parsed, error)
	}{
		{"empty video", nil, parseVideoPayload},
		{"empty audio", nil, parseAudioPayload},
		{"audio as video", appendAudioPayload(nil, 1, 1, 120), parseVideoPayload},
		{"video as audio", appendVideoPayload(nil, 1, 1, false, 300), parseAudioPayload},
		{"truncated", appendVideoPayload(nil, 1, 1, true, 0)[:12], parseVideoPayload},
		{"no marker", append([]byte{opusTOC}, make([]byte, 20)...), parseAudioPayload},
	} {
		if _, err := tc.parse(tc.b); !errors.Is(err, errNotBench) {
			t.Errorf("%s: err %v, want errNotBench", tc.name, err)
		}
	}
}

func TestWindowCountsNothingUntilSet(t *testing.T) {
	w := newWindow()
	if w.contains(0) || w.contains(1<<62) {
		t.Fatal("an unset window contains packets")
	}
	w.set(100, 200)
	for ns, want := range map[int64]bool{99: false, 100: true, 199: true, 200: false} {
		if got := w.contains(ns); got != want {
			t.Errorf("contains(%d) = %v, want %v", ns, got, want)
		}
	}
}

func TestSubscriptionCountsRetransmissionsOnce(t *testing.T) {
	w := newWindow()
	w.set(1000, 2000)
	s := &subscription{kind: "video"}
	for _, p := range []parsed{{seq: 1, sentNS: 500}, {seq: 2, sentNS: 1000, keyframe: true}, {seq: 2, sentNS: 1000, keyframe: true}, {seq: 3, sentNS: 1500}, {seq: 4, sentNS: 2000}} {
		s.record(p, 2500, w)
	}
	if s.received != 2 || len(s.latenciesNS) != 2 || s.latenciesNS[0] != 1500 || s.latenciesNS[1] != 1000 {
		t.Fatalf("received %d, latencies %v", s.received, s.latenciesNS)
	}
	if s.firstAnyNS != 2500 || s.firstKeyNS != 2500 {
		t.Fatalf("first packet %d, first keyframe %d", s.firstAnyNS, s.firstKeyNS)
	}
}

func TestSummaryNearestRank(t *testing.T) {
	var ns []int64
	for i := int64(100); i >= 1; i-- {
		ns = append(ns, i*1_000_000) // 1 ms .. 100 ms, unsorted
	}
	want := Summary{P50: 50, P95: 95, P99: 99, Max: 100, N: 100}
	if got := summarize(ns); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got := summarize(nil); got != (Summary{}) {
		t.Fatalf("empty: %+v", got)
	}
}

func TestWindowKeepsTheLastArrival(t *testing.T) {
	w := newWindow()
	for _, at := range []int64{300, 900, 500} {
		w.arrived(at)
	}
	if got := w.lastIn.Load(); got != 900 {
		t.Fatalf("last arrival %d, want 900", got)
	}
}

// The run waits for packets still arriving after its window, until they
// stop for the quiet period, and never past its limit.
func TestDrainWaitsForLatePackets(t *testing.T) {
	clk := clock{base: time.Now()}
	w := newWindow()
	end := clk.now()
	// The quiet period is far longer than the gaps, however slow the machine.
	const quiet = time.Second
	// Eight late packets, 50 ms apart: each comes within the quiet period.
	arrivals := make(chan int64, 1)
	go func() {
		var last int64
		for range 8 {
			time.Sleep(50 * time.Millisecond)
			last = clk.now()
			w.arrived(last)
		}
		arrivals <- last
	}()
	if err := drain(context.Background(), clk, w, end, quiet, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	returned := clk.now()
	last := <-arrivals
	if returned < last+int64(quiet) {
		t.Fatalf("drain returned %v after the last arrival, before the quiet period of %v", time.Duration(returned-last), quiet)
	}

	// Arrivals that never stop are cut off at the limit.
	w.arrived(clk.now() + int64(time.Hour))
	start := clk.now()
	if err := drain(context.Background(), clk, w, start, quiet, 300*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Duration(clk.now() - start); took < 300*time.Millisecond || took > time.Minute {
		t.Fatalf("drain with endless arrivals took %v, want its limit of 300ms", took)
	}
}

func TestExactPayload(t *testing.T) {
	video := appendVideoPayload(nil, 7, 123456789, true, 300)
	r, err := parseVideoPayload(video)
	if err != nil || !exact("video", video, r) {
		t.Fatalf("a video payload as sent is not exact: %v", err)
	}
	rewritten := append([]byte(nil), video...)
	rewritten[2], rewritten[3] = 0x80|0x12, 0x34 // the SFU's picture ID
	if !exact("video", rewritten, r) {
		t.Fatalf("a rewritten picture ID made the payload inexact")
	}
	rewritten[len(rewritten)-1] = 1
	if exact("video", rewritten, r) {
		t.Fatalf("a changed padding byte went unnoticed")
	}
	audio := appendAudioPayload(nil, 9, 42, 160)
	ra, err := parseAudioPayload(audio)
	if err != nil || !exact("audio", audio, ra) {
		t.Fatalf("an audio payload as sent is not exact: %v", err)
	}
	audio[20] ^= 0xff
	if exact("audio", audio, ra) {
		t.Fatalf("a changed audio byte went unnoticed")
	}
}
