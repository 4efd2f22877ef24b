package mediabench

import "fmt"

// The SFU's CPU per forwarded packet cannot be lower than what the kernel
// charges the sender for one datagram. The floor measures that charge on
// this machine, with no WebRTC at all, so that the SFU's figure can be read
// against it.

// Floor is the CPU one thread spends to send a datagram on loopback.
type Floor struct {
	DatagramBytes int `json:"datagram_bytes"`
	Destinations  int `json:"destinations"`
	Packets       int `json:"packets"`
	// Sendto is the CPU (user and system) per datagram sent with one
	// sendto(2) each, as pion sends; Sendmmsg with one sendmmsg(2) per
	// fan-out. On loopback the system time includes the kernel's delivery
	// to the receiving socket, as it does for the nodes.
	Sendto   float64 `json:"sendto_cpu_us_per_packet"`
	Sendmmsg float64 `json:"sendmmsg_cpu_us_per_packet"`
}

// maxFloorDestinations bounds a floor measurement's fan-out.
const maxFloorDestinations = 256

func checkFloor(dests, size int) error {
	if dests < 1 || dests > maxFloorDestinations {
		return fmt.Errorf("floor: between 1 and %d destinations, got %d", maxFloorDestinations, dests)
	}
	if size < 1 || size > 1500 {
		return fmt.Errorf("floor: datagrams of 1 to 1500 bytes, got %d", size)
	}
	return nil
}
