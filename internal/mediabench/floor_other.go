//go:build !linux

package mediabench

import "errors"

// MeasureFloor needs Linux's per-thread CPU accounting.
func MeasureFloor(dests, size int) (Floor, error) {
	if err := checkFloor(dests, size); err != nil {
		return Floor{DatagramBytes: size, Destinations: dests}, err
	}
	return Floor{}, errors.New("floor: per-thread CPU time is measured on Linux only")
}
