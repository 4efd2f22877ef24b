//go:build !linux

package mediabench

import "errors"

// Floor is the CPU one thread spends to send a datagram on loopback; it is
// measured on Linux only.
type Floor struct {
	DatagramBytes int     `json:"datagram_bytes"`
	Destinations  int     `json:"destinations"`
	Packets       int     `json:"packets"`
	Sendto        float64 `json:"sendto_cpu_us_per_packet"`
	Sendmmsg      float64 `json:"sendmmsg_cpu_us_per_packet"`
}

// MeasureFloor needs Linux's per-thread CPU accounting.
func MeasureFloor(dests, size int) (Floor, error) {
	return Floor{}, errors.New("floor: per-thread CPU time is measured on Linux only")
}
