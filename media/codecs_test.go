package media

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// Every video codec the SFU negotiates reaches a subscriber on the same
// node and one across a trunk, byte for byte, and each subscriber starts at
// a keyframe as that codec marks it.
func TestVideoCodecsThroughCascade(t *testing.T) {
	for _, mime := range []string{webrtc.MimeTypeH264, webrtc.MimeTypeVP9, webrtc.MimeTypeAV1} {
		name := strings.TrimPrefix(mime, "video/")
		t.Run(name, func(t *testing.T) {
			a, b := twoNodes(t, "conf-"+name)
			pub := connect(t, b.testNode, "conf-"+name, "bob@did:web:b", clientOptions{})
			local := connect(t, b.testNode, "conf-"+name, "bea@did:web:b", clientOptions{autoSubscribe: true})
			remote := connect(t, a.testNode, "conf-"+name, "ann@did:web:a", clientOptions{autoSubscribe: true})
			video := &testTrack{tag: 'c', kind: "video", source: "camera", codec: mime}
			pub.publish(video)
			for _, sub := range []*testClient{local, remote} {
				got := sub.waitMedia(sub.waitTrackAdded(video, pub.user), 30, 20*time.Second)
				checkExact(t, video, got)
				if first := videoPrefix(mime, true); got[0].payload[0] != first[0] {
					t.Fatalf("%s: first packet % x is not a %s keyframe", sub.user, got[0].payload[:2], name)
				}
				if !strings.EqualFold(got[0].codec, mime) {
					t.Fatalf("%s: received codec %q, want %s", sub.user, got[0].codec, mime)
				}
			}
		})
	}
}
