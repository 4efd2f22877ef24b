package media

import (
	"time"

	"github.com/pion/rtcp"
)

// Sender reports towards subscribers are made here rather than by pion's
// report interceptor, which takes a lock and reads the clock on every
// packet of every down-track and sends each stream's report in an SRTCP
// packet of its own. A down-track counts what it sends under the lock it
// already holds, and each subscriber gets all its reports of an interval
// in as few compound packets as fit.

const (
	// senderReportInterval is how often a subscriber gets a sender report
	// of each of its streams (RFC 3550 §6.2 asks for about one per
	// second at these rates; pion's interceptor uses the same).
	senderReportInterval = time.Second
	// reportsPerPacket bounds a compound RTCP packet of sender reports
	// (28 bytes each) well under a path MTU.
	reportsPerPacket = 32
)

// ntpEpochOffset is the number of seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

// ntpTime is t as a 64-bit NTP timestamp (RFC 3550 §4).
func ntpTime(t time.Time) uint64 {
	ns := uint64(t.UnixNano())
	secs := ns/uint64(time.Second) + ntpEpochOffset
	frac := (ns % uint64(time.Second)) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// senderReport describes what d sent so far, as of now. It is false until
// the down-track has sent a packet: a source that has sent nothing sends no
// sender report (RFC 3550 §6.4).
func (d *downTrack) senderReport(now time.Time) (rtcp.SenderReport, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.writer == nil || d.sentPackets == 0 {
		return rtcp.SenderReport{}, false
	}
	// The RTP time of now continues the last frame's timestamp at the
	// clock rate from when that frame started going out.
	elapsed := max(now.UnixNano()-d.lastOut, 0)
	return rtcp.SenderReport{
		SSRC:        d.ssrc,
		NTPTime:     ntpTime(now),
		RTPTime:     d.lastTSOut + uint32(uint64(elapsed)*uint64(d.clockRate)/uint64(time.Second)),
		PacketCount: d.sentPackets,
		OctetCount:  d.sentOctets,
	}, true
}

// sendReports sends the subscriber a sender report of each down-track
// every senderReportInterval until the client stops.
func (c *client) sendReports() {
	ticker := time.NewTicker(senderReportInterval)
	defer ticker.Stop()
	var downs []*downTrack
	var reports []rtcp.SenderReport
	var pkts []rtcp.Packet
	for {
		select {
		case <-c.closing:
			return
		case <-ticker.C:
		}
		c.mu.Lock()
		sub := c.sub
		downs = downs[:0]
		for _, s := range c.subs {
			downs = append(downs, s.down)
		}
		c.mu.Unlock()
		if sub == nil {
			continue
		}
		now := time.Now()
		reports = reports[:0]
		for _, d := range downs {
			if r, ok := d.senderReport(now); ok {
				reports = append(reports, r)
			}
		}
		for start := 0; start < len(reports); start += reportsPerPacket {
			pkts = pkts[:0]
			for i := start; i < min(start+reportsPerPacket, len(reports)); i++ {
				pkts = append(pkts, &reports[i])
			}
			if err := sub.WriteRTCP(pkts); err != nil {
				c.log.Debug("sender reports not sent", "err", err)
				break
			}
		}
		clear(downs)
	}
}
