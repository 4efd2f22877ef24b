package repairedrid

import (
	"bytes"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

func TestRetransmissionsCarryTheRepairedRID(t *testing.T) {
	i, err := Factory{}.NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	var got []rtp.Header
	w := i.BindLocalStream(&interceptor.StreamInfo{
		SSRC: 1000, SSRCRetransmission: 2000,
		RTPHeaderExtensions: []interceptor.RTPHeaderExtension{
			{URI: sdp.SDESMidURI, ID: 4}, {URI: sdp.SDESRTPStreamIDURI, ID: 10}, {URI: sdp.SDESRepairRTPStreamIDURI, ID: 11},
		},
	}, interceptor.RTPWriterFunc(func(h *rtp.Header, _ []byte, _ interceptor.Attributes) (int, error) {
		got = append(got, h.Clone())
		return 0, nil
	}))
	for _, ssrc := range []uint32{1000, 2000} {
		h := &rtp.Header{Version: 2, SSRC: ssrc}
		_ = h.SetExtension(4, []byte("1"))
		_ = h.SetExtension(10, []byte("h"))
		if _, err := w.Write(h, []byte{1, 2}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 {
		t.Fatalf("wrote %d packets, want 2", len(got))
	}
	media, repair := got[0], got[1]
	if !bytes.Equal(media.GetExtension(10), []byte("h")) || media.GetExtension(11) != nil {
		t.Fatalf("media packet: rid %q rrid %q, want rid h only", media.GetExtension(10), media.GetExtension(11))
	}
	if repair.GetExtension(10) != nil || !bytes.Equal(repair.GetExtension(11), []byte("h")) || !bytes.Equal(repair.GetExtension(4), []byte("1")) {
		t.Fatalf("rtx packet: rid %q rrid %q mid %q, want rrid h and mid 1", repair.GetExtension(10), repair.GetExtension(11), repair.GetExtension(4))
	}
}
