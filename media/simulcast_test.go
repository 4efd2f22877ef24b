package media

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// estimate sends the SFU a REMB of bps for the stream it sends with ssrc.
func (c *testClient) estimate(ssrc uint32, bps float32) {
	c.t.Helper()
	if err := c.sub.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: bps, SSRCs: []uint32{ssrc}}}); err != nil {
		c.t.Fatalf("%s: send REMB: %v", c.user, err)
	}
}

// waitLayer reads track's media until 20 packets in a row are of layer
// want, each exactly as sent, and returns the SSRC they came with. Once the
// wanted layer has started, any other layer is a failure: a switch happens
// at a keyframe and does not flip back. A packet numbered before one already
// read is a retransmission, or came late: it was sent before the switch,
// and says nothing of it.
func (c *testClient) waitLayer(tr *testTrack, track string, want byte, timeout time.Duration) uint32 {
	c.t.Helper()
	timeout = max(timeout, minWait)
	deadline := time.After(timeout)
	run := 0
	newest, seen := uint16(0), false
	for {
		select {
		case r := <-c.media:
			if r.track != track {
				continue
			}
			if seen && int16(r.seq-newest) <= 0 {
				continue
			}
			newest, seen = r.seq, true
			_, layer, _, ok := parsePayload(r.payload)
			if !ok {
				c.t.Fatalf("%s: bad payload % x", c.user, r.payload)
			}
			if layer != want {
				if run > 0 {
					c.t.Fatalf("%s: layer %c after switching to %c", c.user, layer, want)
				}
				continue
			}
			checkExact(c.t, tr, []received{r})
			if run++; run == 20 {
				return r.ssrc
			}
		case <-deadline:
			c.t.Fatalf("%s: never switched to layer %c within %v", c.user, want, timeout)
		}
	}
}

// A subscriber's bandwidth estimate (REMB) picks the largest simulcast layer
// that fits it, on the publisher's node and across a trunk, where the
// layer is chosen from the rates the sending node reports before it
// crosses.
func TestSimulcastFollowsBandwidthEstimate(t *testing.T) {
	a, b := twoNodes(t, "conf-remb")
	fullLayers(a, b)
	pub := connect(t, b.testNode, "conf-remb", "bob@did:web:b", clientOptions{})
	local := connect(t, b.testNode, "conf-remb", "bea@did:web:b", clientOptions{autoSubscribe: true})
	remote := connect(t, a.testNode, "conf-remb", "ann@did:web:a", clientOptions{autoSubscribe: true})
	// At 100 packets/s: q about 30 kbit/s, h about 150, f about 390.
	video := &testTrack{tag: 'r', kind: "video", source: "camera", simulcast: true, fill: [3]int{0, 150, 450}}
	pub.publish(video)
	for _, sub := range []*testClient{local, remote} {
		id := sub.waitTrackAdded(video, pub.user)
		ssrc := sub.waitLayer(video, id, 'f', 20*time.Second)
		sub.estimate(ssrc, 250_000)
		sub.waitLayer(video, id, 'h', 15*time.Second)
		sub.estimate(ssrc, 60_000)
		sub.waitLayer(video, id, 'q', 15*time.Second)
		sub.estimate(ssrc, 5_000_000)
		sub.waitLayer(video, id, 'f', 15*time.Second)
	}
	// Across the trunk, only the layer in use crosses once switching ends.
	tr := trunkOf(t, b, "conf-remb", "did:web:a")
	id := remote.waitTrackAdded(video, pub.user)
	layersSettle(t, tr, id, video, layerSet(0).with(2), 150)
}
