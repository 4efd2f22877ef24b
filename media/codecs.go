package media

import (
	"fmt"

	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Payload types follow what browsers commonly offer, so answers rarely need
// to remap them.
const (
	ptOpus    = 111
	ptVP8     = 96
	ptVP8RTX  = 97
	ptVP9     = 98
	ptVP9RTX  = 99
	ptH264    = 102
	ptH264RTX = 103
	ptAV1     = 45
	ptAV1RTX  = 46
)

// videoFeedback is the RTCP feedback every video codec advertises. Both
// bandwidth signals are offered: publishers' congestion control gets
// transport-cc feedback from the SFU, while subscribers report REMB (see
// newSubscribeEngine).
func videoFeedback(transportCC bool) []webrtc.RTCPFeedback {
	fb := []webrtc.RTCPFeedback{
		{Type: webrtc.TypeRTCPFBNACK},
		{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
		{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
		{Type: webrtc.TypeRTCPFBGoogREMB},
	}
	if transportCC {
		fb = append(fb, webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC})
	}
	return fb
}

func registerCodecs(m *webrtc.MediaEngine, transportCC bool) error {
	audio := []webrtc.RTPCodecParameters{{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: ptOpus,
	}}
	fb := videoFeedback(transportCC)
	video := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: ptVP8},
		{RTPCodecCapability: rtx(ptVP8), PayloadType: ptVP8RTX},
		{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: fb,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
		}, PayloadType: ptH264},
		{RTPCodecCapability: rtx(ptH264), PayloadType: ptH264RTX},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0", RTCPFeedback: fb}, PayloadType: ptVP9},
		{RTPCodecCapability: rtx(ptVP9), PayloadType: ptVP9RTX},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: ptAV1},
		{RTPCodecCapability: rtx(ptAV1), PayloadType: ptAV1RTX},
	}
	for _, c := range audio {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return fmt.Errorf("register codec %s: %w", c.MimeType, err)
		}
	}
	for _, c := range video {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return fmt.Errorf("register codec %s: %w", c.MimeType, err)
		}
	}
	return nil
}

func rtx(apt int) webrtc.RTPCodecCapability {
	return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", apt)}
}

// newPublishEngine configures the side that receives clients' media. The SFU
// generates NACKs towards publishers, sends receiver reports and, for video,
// transport-cc feedback (so the browser's congestion control sizes its
// simulcast layers), and reads the audio-level, MID and RID header
// extensions.
func newPublishEngine() (*webrtc.MediaEngine, *interceptor.Registry, error) {
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m, true); err != nil {
		return nil, nil, err
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, nil, fmt.Errorf("register audio-level extension: %w", err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, nil, fmt.Errorf("register simulcast extensions: %w", err)
	}
	ir := &interceptor.Registry{}
	// Innermost: the interceptors added after it find each packet's header
	// parsed (headercache.go).
	ir.Add(headerCacheFactory{})
	// Only the NACK generator: answering NACKs is done from the up-track's
	// cache (packetcache.go), not from a per-sender copy.
	gen, err := nackGenerator()
	if err != nil {
		return nil, nil, err
	}
	ir.Add(gen)
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, nil, fmt.Errorf("configure rtcp reports: %w", err)
	}
	// Transport-cc on video only, with the SFU's own feedback (twcc.go).
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, nil, fmt.Errorf("register transport-cc extension: %w", err)
	}
	ir.Add(twccFeedbackFactory{})
	return m, ir, nil
}

// newSubscribeEngine configures the side that sends media to clients. Its
// bandwidth estimate is the subscriber's REMB: transport-cc is not offered
// here, because a browser that negotiates it stops sending REMB and the SFU
// does not run a sender-side estimator yet. Header extensions of publishers
// are stripped on the way out, so none are negotiated. No interceptor runs
// on a forwarded packet: NACKs are answered from the up-track's cache
// (rtcp.go) and sender reports are made once per interval from the
// down-tracks' own counts (reports.go).
func newSubscribeEngine() (*webrtc.MediaEngine, *interceptor.Registry, error) {
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m, false); err != nil {
		return nil, nil, err
	}
	return m, &interceptor.Registry{}, nil
}
