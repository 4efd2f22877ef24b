package media

import (
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// NodeClient is the test client of this package, for tests in media_test
// that run real nodes (internal/nodetest, which imports media).
type NodeClient struct{ c *testClient }

// NodeTrack is a synthetic published track.
type NodeTrack struct{ tr *testTrack }

// DialNode connects a client that subscribes to every track to a node's
// signalling URL (wss://…/media?access_token=…) as user.
func DialNode(t *testing.T, url string, hc *http.Client, user string) *NodeClient {
	t.Helper()
	return &NodeClient{dial(t, url, &websocket.DialOptions{HTTPClient: hc}, user, clientOptions{autoSubscribe: true})}
}

// PublishCamera publishes a synthetic camera track and returns it.
func (n *NodeClient) PublishCamera() *NodeTrack {
	tr := &testTrack{tag: 'v', kind: "video", source: "camera"}
	n.c.publish(tr)
	return &NodeTrack{tr}
}

// TrackOf waits until the SFU announced tr, published by owner, and
// returns its id.
func (n *NodeClient) TrackOf(tr *NodeTrack, owner string, timeout time.Duration) string {
	n.c.t.Helper()
	is := func(info any) bool {
		i, ok := info.(map[string]any)
		return ok && i["owner"] == owner && i["kind"] == tr.tr.kind && i["source"] == tr.tr.source
	}
	var id string
	n.c.awaitMsg(0, "track_added of "+owner, timeout, func(m map[string]any) bool {
		infos := []any{m}
		if m["type"] == "joined" {
			infos = m["tracks"].([]any)
		} else if m["type"] != "track_added" {
			return false
		}
		for _, i := range infos {
			if is(i) {
				id = i.(map[string]any)["id"].(string)
				return true
			}
		}
		return false
	})
	return id
}

// WaitMedia waits for count packets of track and checks them byte for
// byte against what tr sent.
func (n *NodeClient) WaitMedia(tr *NodeTrack, track string, count int, timeout time.Duration) {
	n.c.t.Helper()
	checkExact(n.c.t, tr.tr, n.c.waitMedia(track, count, timeout))
}

// Received counts the packets of track received within d, after dropping
// what had arrived before.
func (n *NodeClient) Received(track string, d time.Duration) int {
	for drained := false; !drained; {
		select {
		case <-n.c.media:
		default:
			drained = true
		}
	}
	return countOf(n.c.collect(d), track)
}

// Await waits for a message matching ok after the first skip messages
// seen, and returns it with the count seen up to it.
func (n *NodeClient) Await(skip int, what string, timeout time.Duration, ok func(map[string]any) bool) (map[string]any, int) {
	n.c.t.Helper()
	return n.c.awaitMsg(skip, what, timeout, ok)
}

// Seen is how many messages the client has looked at.
func (n *NodeClient) Seen() int { return n.c.seenCount() }

// SameMessage reports whether got has exactly want's fields and values.
func SameMessage(got, want map[string]any) bool { return sameMessage(got, want) }
