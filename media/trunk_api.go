package media

import (
	"fmt"
	"time"

	"github.com/pion/interceptor"
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
		ir, err := trunkInterceptors()
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

func trunkInterceptors() (*interceptor.Registry, error) {
	ir := &interceptor.Registry{}
	gen, err := nackGenerator()
	if err != nil {
		return nil, err
	}
	ir.Add(gen)
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("configure rtcp reports: %w", err)
	}
	return ir, nil
}
