package scenario

import (
	"fmt"
	"runtime"
	"syscall"
	"time"

	"github.com/entente-org/entente/internal/mediabench"
	"github.com/entente-org/entente/internal/node"
)

// serverSample is what this process reads at each end of the window.
type serverSample struct {
	cpu            time.Duration
	userCPU        time.Duration
	mallocs        uint64
	forwarded      []int64
	forwardedBytes []int64
	trunkBytes     []int64
	trunkPackets   []int64
	rcvbufErrors   int64
}

func sampleServer(nodes []*node.Node) (serverSample, error) {
	var s serverSample
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, fmt.Errorf("getrusage: %w", err)
	}
	s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	s.userCPU = time.Duration(ru.Utime.Nano())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mallocs = ms.Mallocs
	for _, n := range nodes {
		f, err := forwardedCounts(n)
		if err != nil {
			return s, err
		}
		s.forwarded = append(s.forwarded, f.packets)
		s.forwardedBytes = append(s.forwardedBytes, f.bytes)
		s.trunkBytes = append(s.trunkBytes, int64(n.SFU().TrunkStats().BytesSent))
	}
	var err error
	s.rcvbufErrors, err = mediabench.UDPRcvbufErrors()
	return s, err
}

// forwarded is what an SFU's counters say it forwarded, over media kinds.
type forwarded struct{ packets, bytes int64 }

// forwardedCounts sums the SFU's forwarded packet and payload byte
// counters over kinds.
func forwardedCounts(n *node.Node) (forwarded, error) {
	var f forwarded
	families, err := n.Registry().Gather()
	if err != nil {
		return f, fmt.Errorf("%s metrics: %w", n.Name(), err)
	}
	for _, fam := range families {
		var sum *int64
		switch fam.GetName() {
		case "entente_media_forwarded_packets_total":
			sum = &f.packets
		case "entente_media_forwarded_bytes_total":
			sum = &f.bytes
		default:
			continue
		}
		for _, m := range fam.GetMetric() {
			*sum += int64(m.GetCounter().GetValue())
		}
	}
	return f, nil
}
