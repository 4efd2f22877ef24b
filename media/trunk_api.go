package media

import (
	"fmt"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// trunkAPI builds, once, the pion APIs of trunks: every codec clients may
// publish, NACK generation towards the sending node and RTCP reports, and
// ICE timeouts short enough that a cut is noticed and restarted within
// seconds (§10.6). It returns the member side's API if member is set.
func (ts *trunkSet) trunkAPI(member bool) (*webrtc.API, error) {
	ts.apiOnce.Do(func() {
		m := &webrtc.MediaEngine{}
		if err := registerCodecs(m, false); err != nil {
			ts.apiErr = err
			return
		}
		// The audio level crosses so that the far node detects the active
		// speaker among remote participants too.
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
			ts.apiErr = fmt.Errorf("register audio-level extension: %w", err)
			return
		}
		ir, err := ts.trunkInterceptors(m)
		if err != nil {
			ts.apiErr = err
			return
		}
		se := ts.sfu.settings
		se.SetICETimeouts(time.Second, 8*time.Second, 250*time.Millisecond)
		if ts.net != nil {
			se.SetNet(ts.net)
		}
		ts.hostAPI = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
		// A member opens each trunk from a UDP port of its own, as a
		// browser does. On a shared port the host's UDP mux tells peer
		// connections apart by their remote address, and every trunk from
		// a member's shared port would come from the same one: a second
		// conference between the same two nodes would take the first's
		// packets.
		se.SetICEUDPMux(nil)
		ts.memberAPI = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	})
	if member {
		return ts.memberAPI, ts.apiErr
	}
	return ts.hostAPI, ts.apiErr
}

// trunkInterceptors sets up what each trunk runs in both directions: NACK
// generation for audio and video (the sending side answers from its cache,
// trunk_slot.go), RTCP reports, and transport-wide congestion control: the
// receiving side sends transport-cc feedback, the sending side numbers its
// packets and estimates the trunk's capacity with Google Congestion Control
// (trunk_cc.go). The estimator only estimates: it paces nothing, since a
// trunk adapts by dropping simulcast layers, not by queueing packets.
func (ts *trunkSet) trunkInterceptors(m *webrtc.MediaEngine) (*interceptor.Registry, error) {
	ir := &interceptor.Registry{}
	// Audio NACK is negotiated on trunks, unlike on client links: both
	// ends are SFUs that keep what they sent (spec/federation.md §10.4).
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBNACK}, webrtc.RTPCodecTypeAudio)
	gen, err := nackGenerator()
	if err != nil {
		return nil, err
	}
	ir.Add(gen)
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("configure rtcp reports: %w", err)
	}
	estimator, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(trunkInitialEstimate),
			gcc.SendSideBWEMinBitrate(trunkMinEstimate),
			gcc.SendSideBWEMaxBitrate(trunkMaxEstimate),
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
			gcc.WithLoggerFactory(pionLogs{ts.log}),
		)
	})
	if err != nil {
		return nil, fmt.Errorf("configure congestion control: %w", err)
	}
	estimator.OnNewPeerConnection(ts.estimators.put)
	ir.Add(estimator)
	// Registered after the estimator, so a packet has its transport-wide
	// sequence number by the time the estimator records it as sent.
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(m, ir); err != nil {
		return nil, fmt.Errorf("configure transport-cc numbering: %w", err)
	}
	if err := webrtc.ConfigureTWCCSender(m, ir); err != nil {
		return nil, fmt.Errorf("configure transport-cc feedback: %w", err)
	}
	return ir, nil
}
