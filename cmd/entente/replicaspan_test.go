package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/cluster"
	"github.com/entente-org/entente/internal/localreplicas"
	"github.com/entente-org/entente/internal/mediabench"
)

// replicaServices are the PostgreSQL and NATS servers of replica tests;
// under CI=true their absence fails the test.
func replicaServices(t *testing.T) (dbURL, natsURL string) {
	t.Helper()
	dbURL, natsURL = os.Getenv("ENTENTE_TEST_DATABASE_URL"), os.Getenv("ENTENTE_TEST_NATS_URL")
	if dbURL == "" || natsURL == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("replica tests need ENTENTE_TEST_DATABASE_URL and ENTENTE_TEST_NATS_URL (PostgreSQL, NATS with JetStream)")
		}
		t.Skip("ENTENTE_TEST_DATABASE_URL or ENTENTE_TEST_NATS_URL not set")
	}
	return dbURL, natsURL
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// startReplicas runs one node as count `entente serve` processes of this
// test binary.
func startReplicas(t *testing.T, count, maxParticipants int) *localreplicas.Node {
	t.Helper()
	dbURL, natsURL := replicaServices(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := localreplicas.Start(ctx, localreplicas.Options{
		Command: []string{os.Args[0]}, Env: []string{"ENTENTE_TEST_RUN_MAIN=1"},
		Replicas: count, DatabaseURL: dbURL, NATSURL: natsURL, MaxParticipants: maxParticipants,
		Dir: t.TempDir(), Log: testLog{t}, Name: "Spanning node",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close replicas: %v", err)
		}
	})
	return n
}

func metricOn(t *testing.T, n *localreplicas.Node, i int, name string) float64 {
	t.Helper()
	v, err := n.Metric(context.Background(), i, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A meeting of four on replicas that take two participants each spans two
// of the three replicas, joined by one trunk. Every participant receives
// every other's audio and video byte for byte, whichever replica its
// WebSocket reached first, and each track crosses the trunk once although
// two participants receive it on the far side.
func TestReplicasMeetingSpansTwo(t *testing.T) {
	n := startReplicas(t, 3, 2)
	ctx := context.Background()
	conf, err := n.Conference(ctx, "organiser", "Too big for one replica")
	if err != nil {
		t.Fatal(err)
	}
	plan := mediabench.Plan{CAPEM: string(n.CA.PEM), Duration: 3 * time.Second}
	for i := range 4 {
		id := fmt.Sprintf("p%d", i+1)
		_, tok, err := n.Participant(ctx, conf, id, "Participant "+id)
		if err != nil {
			t.Fatal(err)
		}
		// The WebSockets arrive at every replica, as from a load
		// balancer; the replicas route them.
		plan.Participants = append(plan.Participants, mediabench.Participant{
			Name: id, Conference: conf, URL: n.MediaURL(i%3, conf), Token: tok,
			Audio: true, Video: true, Subscribe: true,
		})
	}
	const trunkSent = "entente_media_trunk_sent_packets_total"
	sumTrunk := func() float64 {
		var s float64
		for i := range n.Replicas {
			s += metricOn(t, n, i, trunkSent)
		}
		return s
	}
	var before, after float64
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rep, err := mediabench.Run(rctx, plan, func(p mediabench.Phase) {
		switch p {
		case mediabench.WindowStart:
			before = sumTrunk()
		case mediabench.WindowEnd:
			after = sumTrunk()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: sent %d received %d lost %d subscriptions %d without media %d mismatches %d; trunk packets in the window %.0f",
		rep.PacketsSent, rep.PacketsReceived, rep.PacketsLost, rep.Subscriptions, rep.SubscriptionsWithoutMedia, rep.PayloadMismatches, after-before)
	// Four participants, two tracks each, received by the three others.
	if rep.Subscriptions != 24 || rep.SubscriptionsWithoutMedia != 0 {
		t.Fatalf("%d subscriptions, %d without media; want 24, all with media", rep.Subscriptions, rep.SubscriptionsWithoutMedia)
	}
	if rep.PayloadMismatches != 0 {
		t.Fatalf("%d payloads differ from what was sent", rep.PayloadMismatches)
	}
	if rep.PacketsReceived == 0 || rep.PacketsLost*10 > rep.PacketsReceived {
		t.Fatalf("received %d, lost %d packets in the window", rep.PacketsReceived, rep.PacketsLost)
	}

	// The meeting spans exactly two replicas, joined by one trunk.
	var spanned []string
	for i, r := range n.Replicas {
		switch trunks := metricOn(t, n, i, "entente_media_trunks"); trunks {
		case 0:
		case 1:
			spanned = append(spanned, r.ID)
		default:
			t.Fatalf("replica %s has %v trunks, want at most 1", r.ID, trunks)
		}
	}
	if len(spanned) != 2 {
		t.Fatalf("replicas with a trunk: %v, want two", spanned)
	}
	// Each of the eight tracks has three receivers, two of them across the
	// trunk from its publisher: once per track, the trunk carries a third
	// of what the participants received; once per receiver, two thirds.
	perTrack := float64(rep.PacketsReceived) / 3
	if crossed := after - before; crossed < 0.7*perTrack || crossed > 1.3*perTrack {
		t.Fatalf("%.0f packets crossed the trunk in the window for %.0f packets per track received; want each track once", crossed, perTrack)
	}
}

// The internal trunk route takes only requests another replica of the node
// signed: a request without the link signature, or with a forged one, is
// refused with 401 and says why.
func TestReplicaTrunkRouteRefusesUnsignedRequests(t *testing.T) {
	n := startReplicas(t, 1, 2)
	body := []byte(`{"conference":"x","sdp":"v=0"}`)
	for _, c := range []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"unsigned", nil, "replica link: missing or malformed Entente-Replica-Signature"},
		{"forged", map[string]string{
			cluster.HeaderFrom: "r9", cluster.HeaderDate: time.Now().UTC().Format(http.TimeFormat),
			cluster.HeaderDigest: "sha-256=AAAA", cluster.HeaderSignature: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		}, "replica link: signature does not match"},
	} {
		req, err := http.NewRequest(http.MethodPost, n.Replicas[0].URL+"/internal/v1/trunks", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range c.headers {
			req.Header.Set(k, v)
		}
		resp, err := n.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var got struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(data, &got); err != nil || resp.StatusCode != http.StatusUnauthorized ||
			got.Error.Code != "unauthorized" || got.Error.Message != c.want {
			t.Fatalf("%s: %d %s; want 401 unauthorized %q", c.name, resp.StatusCode, data, c.want)
		}
	}
}
