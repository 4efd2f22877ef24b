package fedbench

import (
	"testing"
	"time"
)

func TestSummarizeNearestRank(t *testing.T) {
	cases := []struct {
		name string
		in   []int // milliseconds
		want Summary
	}{
		{"one", []int{7}, Summary{P50: 7, P95: 7, Max: 7, N: 1}},
		{"unsorted four", []int{40, 10, 30, 20}, Summary{P50: 20, P95: 40, Max: 40, N: 4}},
		{"twenty", []int{20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, Summary{P50: 10, P95: 19, Max: 20, N: 20}},
		{"none", nil, Summary{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ds []time.Duration
			for _, v := range tc.in {
				ds = append(ds, time.Duration(v)*time.Millisecond)
			}
			if got := Summarize(ds); got != tc.want {
				t.Fatalf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}
