package media

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// RTCP is terminated at the SFU: a subscriber's reports and feedback are
// consumed here and never forwarded, except keyframe requests, which are
// merged per layer and rate-limited by the up-track (spec/client-api.md
// §5.5).

func nackGenerator() (interceptor.Factory, error) {
	g, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, fmt.Errorf("nack generator: %w", err)
	}
	return g, nil
}

// readSubscriberRTCP handles the RTCP a subscriber sends about one
// down-track until the sender stops.
func readSubscriberRTCP(sender *webrtc.RTPSender, d *downTrack, m *metrics, log *slog.Logger) {
	buf := make([]byte, maxPacketSize)
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
				log.Debug("subscriber rtcp read ended", "err", err)
			}
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			m.malformed.WithLabelValues("rtcp").Inc()
			log.Debug("malformed rtcp dropped", "err", err)
			continue
		}
		handleSubscriberRTCP(pkts, d, m)
	}
}

func handleSubscriberRTCP(pkts []rtcp.Packet, d *downTrack, m *metrics) {
	keyframe := false
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			keyframe = true
		case *rtcp.TransportLayerNack:
			for _, pair := range p.Nacks {
				for _, seq := range pair.PacketList() {
					if d.retransmit(seq) {
						m.nackAnswered.Inc()
					} else {
						m.nackMissed.Inc()
					}
				}
			}
		case *rtcp.ReceiverEstimatedMaximumBitrate:
			d.setEstimate(uint64(p.Bitrate))
		case *rtcp.ReceiverReport:
			d.noteReports(p.Reports)
		}
	}
	if keyframe {
		d.up.RequestKeyframe(d.layer())
	}
}

// drainRTCP reads and discards the publisher's RTCP for one received stream
// so that pion's interceptors, which run on read, see its sender reports.
func drainRTCP(r *webrtc.RTPReceiver, rid string) {
	buf := make([]byte, maxPacketSize)
	for {
		var err error
		if rid == "" {
			_, _, err = r.Read(buf)
		} else {
			_, _, err = r.ReadSimulcast(buf, rid)
		}
		if err != nil {
			return
		}
	}
}

// pliSender returns the function an up-track uses to ask its publisher for a
// keyframe.
func pliSender(pc *webrtc.PeerConnection) func(ssrc uint32) error {
	return func(ssrc uint32) error {
		if err := pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
			return fmt.Errorf("send pli for ssrc %d: %w", ssrc, err)
		}
		return nil
	}
}
