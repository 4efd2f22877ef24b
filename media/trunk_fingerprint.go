package media

import (
	"errors"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// errTrunkPeerChanged says that the other end of a trunk answered an ICE
// restart with another DTLS certificate: it is not the process the trunk
// was set up with (a host node restarted, or, on a node run as replicas,
// another replica took the conference over after the first died). The
// connection cannot carry on; the member sets up a new trunk.
var errTrunkPeerChanged = errors.New("the other end answers with another DTLS certificate: set up afresh")

// dtlsFingerprint is the a=fingerprint of a description, at session level
// or on its first media section that has one; "" when none can be read.
func dtlsFingerprint(raw string) string {
	var d sdp.SessionDescription
	if d.UnmarshalString(raw) != nil {
		return ""
	}
	if v, ok := d.Attribute("fingerprint"); ok {
		return strings.ToLower(strings.TrimSpace(v))
	}
	for _, m := range d.MediaDescriptions {
		if v, ok := m.Attribute("fingerprint"); ok {
			return strings.ToLower(strings.TrimSpace(v))
		}
	}
	return ""
}

// samePeer reports whether a new description comes from the same end of
// the connection as the current remote one, when both can be read.
func samePeer(current *sdpHolder, next string) bool {
	if current == nil {
		return true
	}
	a, b := dtlsFingerprint(current.SDP), dtlsFingerprint(next)
	return a == "" || b == "" || a == b
}

// sdpHolder is the part of a session description samePeer reads.
type sdpHolder struct{ SDP string }

// remoteSDP is pc's current remote description, nil when it has none.
func remoteSDP(pc interface {
	CurrentRemoteDescription() *webrtc.SessionDescription
}) *sdpHolder {
	d := pc.CurrentRemoteDescription()
	if d == nil {
		return nil
	}
	return &sdpHolder{SDP: d.SDP}
}
