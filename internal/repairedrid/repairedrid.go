// Package repairedrid labels a pion sender's retransmissions as a
// browser's are, for Entente's test and benchmark clients.
package repairedrid

import (
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Factory makes the interceptor that labels retransmissions as a
// browser does. pion's NACK responder sends each retransmission on the RTX
// stream with the original packet's header extensions, so a simulcast
// layer's RTX packets carry its rtp-stream-id. RFC 8852 §3.2 wants the
// repaired-rtp-stream-id there: an SFU reading the rid takes the RTX SSRC
// for a second stream of the layer (pion's receiver re-binds the layer's
// track to it and fires OnTrack again), where a browser's RTX stream is
// recognised as the layer's repair stream. Registered before the default
// interceptors, it is the innermost writer and sees the responder's
// retransmissions.
type Factory struct{}

// NewInterceptor implements interceptor.Factory.
func (Factory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &repairedRID{}, nil
}

type repairedRID struct{ interceptor.NoOp }

func (*repairedRID) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	var ridID, rridID uint8
	for _, e := range info.RTPHeaderExtensions {
		switch e.URI {
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(e.ID)
		case sdp.SDESRepairRTPStreamIDURI:
			rridID = uint8(e.ID)
		}
	}
	rtx := info.SSRCRetransmission
	if rtx == 0 || ridID == 0 || rridID == 0 {
		return writer
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if h.SSRC == rtx {
			if rid := h.GetExtension(ridID); rid != nil {
				rid = append([]byte(nil), rid...)
				_ = h.DelExtension(ridID)
				if err := h.SetExtension(rridID, rid); err != nil {
					return 0, err
				}
			}
		}
		return writer.Write(h, payload, a)
	})
}
