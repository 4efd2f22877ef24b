package main

import (
	"encoding/json"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/entente-org/entente/internal/mediabench/scenario"
)

func jsonKeys(t *testing.T, data []byte) []string {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("not one JSON object: %v: %q", err, data)
	}
	var keys []string
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// benchMedia runs `entente bench media args…`, with the clients in a second
// process (this test binary, as entente), and returns its JSON decoded and
// as printed.
func benchMedia(t *testing.T, args ...string) (scenario.Report, string) {
	t.Helper()
	env := append(os.Environ(), "ENTENTE_TEST_RUN_MAIN=1")
	r := runCLI(t, env, append([]string{"bench", "media"}, args...)...)
	if r.code != 0 {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
	var got scenario.Report
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	return got, r.stdout
}

func TestBenchMediaTinyScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and WebRTC clients")
	}
	got, stdout := benchMedia(t, "--nodes", "1", "--publishers", "1", "--subscribers", "2", "--duration", "2s")
	want := []string{"clients", "cores", "forwarded_packets", "go", "join_to_first_frame_ms", "latency_ms",
		"packets_lost", "packets_received", "packets_sent", "scenario", "server_cpu_ms",
		"server_cpu_us_per_forwarded_packet", "server_cpu_us_per_received_packet", "server_mallocs_per_forwarded_packet",
		"server_user_cpu_us_per_forwarded_packet", "subscriptions",
		"subscriptions_without_media", "trunk_efficiency", "udp_floor", "udp_rcvbuf_errors"}
	if keys := jsonKeys(t, []byte(stdout)); !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatal(err)
	}
	summaryKeys := []string{"max", "n", "p50", "p95", "p99"}
	for _, k := range []string{"latency_ms", "join_to_first_frame_ms"} {
		if keys := jsonKeys(t, raw[k]); !slices.Equal(keys, summaryKeys) {
			t.Fatalf("%s keys %v, want %v", k, keys, summaryKeys)
		}
	}
	if string(raw["trunk_efficiency"]) != "null" {
		t.Fatalf("trunk_efficiency %s with a single node, want null", raw["trunk_efficiency"])
	}
	wantScenario := scenario.Scenario{Nodes: 1, Conferences: 1, Publishers: 1, Subscribers: 2, Participants: 3, DurationS: 2, Simulcast: true, UDP: "per-connection", ClientKind: "native"}
	if got.Scenario != wantScenario {
		t.Fatalf("scenario %+v, want %+v", got.Scenario, wantScenario)
	}
	if got.Clients != "subprocess" || got.Cores != runtime.NumCPU() || got.Go != runtime.Version() {
		t.Fatalf("clients %q, cores %d, go %q", got.Clients, got.Cores, got.Go)
	}
	// One publisher of audio and video, two subscribers: four subscriptions.
	if got.Subscriptions != 4 || got.SubscriptionsNoMedia != 0 {
		t.Fatalf("subscriptions %d, without media %d; want 4 and 0", got.Subscriptions, got.SubscriptionsNoMedia)
	}
	if got.PacketsReceived <= 0 || got.PacketsLost < 0 || got.PacketsSent <= 0 {
		t.Fatalf("sent %d, received %d, lost %d", got.PacketsSent, got.PacketsReceived, got.PacketsLost)
	}
	l, j := got.Latency, got.JoinToFirstFrame
	if l.N != int(got.PacketsReceived) || l.P50 > l.P99 || l.P99 > l.Max {
		t.Fatalf("latency %+v for %d packets received", l, got.PacketsReceived)
	}
	// One video track, two subscribers.
	if j.N != 2 || j.P50 <= 0 || j.P50 > j.P95 {
		t.Fatalf("join to first frame %+v", j)
	}
	if fwd := got.ForwardedPackets["Bench Node 1"]; fwd <= 0 || len(got.ForwardedPackets) != 1 {
		t.Fatalf("forwarded packets %v", got.ForwardedPackets)
	}
	if got.ServerCPUPerPacket == nil || *got.ServerCPUPerPacket <= 0 || got.ServerCPUMillis <= 0 ||
		got.ServerCPUPerReceived == nil || !near(*got.ServerCPUPerReceived, got.ServerCPUMillis*1000/float64(got.PacketsReceived)) ||
		!near(*got.ServerCPUPerPacket, got.ServerCPUMillis*1000/float64(got.ForwardedPackets["Bench Node 1"])) ||
		got.ServerUserCPUPerPacket == nil || *got.ServerUserCPUPerPacket <= 0 || *got.ServerUserCPUPerPacket > *got.ServerCPUPerPacket {
		t.Fatalf("server CPU %s µs per forwarded packet (user %s), %s per received packet, %v ms; forwarded %v, received %d",
			fmtOpt(got.ServerCPUPerPacket), fmtOpt(got.ServerUserCPUPerPacket), fmtOpt(got.ServerCPUPerReceived),
			got.ServerCPUMillis, got.ForwardedPackets, got.PacketsReceived)
	}
	// The floor is measured at the run's mean datagram, to each subscriber.
	f := got.UDPFloor
	if f == nil || f.Destinations != 2 || f.DatagramBytes <= scenario.RTPHeaderBytes+scenario.SRTPTagBytes || f.Packets <= 0 ||
		f.Sendto <= 0 || f.Sendmmsg <= 0 {
		t.Fatalf("udp floor %+v", f)
	}
}

// A meeting where only some participants have a camera: everyone hears
// everyone, and the profile of the nodes is written.
func TestBenchMediaMeetingWithFewCameras(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and WebRTC clients")
	}
	profile := t.TempDir() + "/cpu.prof"
	got, _ := benchMedia(t, "--meeting", "3", "--video", "1", "--duration", "1s", "--cpuprofile", profile)
	want := scenario.Scenario{Nodes: 1, Conferences: 1, Meeting: 3, VideoPublishers: 1, Participants: 3, DurationS: 1, Simulcast: true, UDP: "per-connection", ClientKind: "native"}
	if got.Scenario != want {
		t.Fatalf("scenario %+v, want %+v", got.Scenario, want)
	}
	// Three microphones heard by two others each, one camera seen by two.
	if got.Subscriptions != 8 || got.SubscriptionsNoMedia != 0 || got.JoinToFirstFrame.N != 2 {
		t.Fatalf("subscriptions %d, without media %d, first frames %d; want 8, 0 and 2",
			got.Subscriptions, got.SubscriptionsNoMedia, got.JoinToFirstFrame.N)
	}
	if st, err := os.Stat(profile); err != nil || st.Size() == 0 {
		t.Fatalf("cpu profile: %v", err)
	}
}

// Two nodes each on one shared UDP port, as in production: every
// subscription on both nodes carries media, and the scenario says so.
func TestBenchMediaOnSharedPorts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes and WebRTC clients")
	}
	got, _ := benchMedia(t, "--nodes", "2", "--meeting", "3", "--duration", "1s", "--udp", "shared")
	want := scenario.Scenario{Nodes: 2, Conferences: 1, Meeting: 3, VideoPublishers: 3, Participants: 3, DurationS: 1, Simulcast: true, UDP: "shared", ClientKind: "native"}
	if got.Scenario != want {
		t.Fatalf("scenario %+v, want %+v", got.Scenario, want)
	}
	// Three participants, each heard and seen by the two others.
	if got.Subscriptions != 12 || got.SubscriptionsNoMedia != 0 || got.JoinToFirstFrame.N != 6 {
		t.Fatalf("subscriptions %d, without media %d, first frames %d; want 12, 0 and 6",
			got.Subscriptions, got.SubscriptionsNoMedia, got.JoinToFirstFrame.N)
	}
	if len(got.ForwardedPackets) != 2 || got.ForwardedPackets["Bench Node 1"] <= 0 || got.ForwardedPackets["Bench Node 2"] <= 0 {
		t.Fatalf("forwarded packets %v", got.ForwardedPackets)
	}
}

// The same meeting with native and with LiveKit clients, side by side:
// both reports are complete, every subscription of each kind carries media,
// and the LiveKit meeting's participants are LiveKit clients (the node
// forwarded their packets, which only a LiveKit publication can be here).
func TestBenchMediaBothKindsOfClient(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and WebRTC clients")
	}
	env := append(os.Environ(), "ENTENTE_TEST_RUN_MAIN=1")
	r := runCLI(t, env, "bench", "media", "--meeting", "3", "--video", "1", "--duration", "1s", "--clients", "both")
	if r.code != 0 {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
	if keys := jsonKeys(t, []byte(r.stdout)); !slices.Equal(keys, []string{"livekit", "native"}) {
		t.Fatalf("keys %v, want livekit and native", keys)
	}
	var got scenario.Comparison
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	for kind, rep := range map[string]scenario.Report{"native": got.Native, "livekit": got.LiveKit} {
		want := scenario.Scenario{Nodes: 1, Conferences: 1, Meeting: 3, VideoPublishers: 1, Participants: 3, DurationS: 1,
			Simulcast: true, UDP: "per-connection", ClientKind: kind}
		if rep.Scenario != want {
			t.Fatalf("%s: scenario %+v, want %+v", kind, rep.Scenario, want)
		}
		// Three microphones heard by two others each, one camera seen by two.
		if rep.Subscriptions != 8 || rep.SubscriptionsNoMedia != 0 || rep.JoinToFirstFrame.N != 2 {
			t.Fatalf("%s: subscriptions %d, without media %d, first frames %d; want 8, 0 and 2",
				kind, rep.Subscriptions, rep.SubscriptionsNoMedia, rep.JoinToFirstFrame.N)
		}
		fwd := rep.ForwardedPackets["Bench Node 1"]
		if fwd <= 0 || rep.PacketsReceived <= 0 || rep.Latency.N != int(rep.PacketsReceived) ||
			rep.ServerCPUPerPacket == nil || !near(*rep.ServerCPUPerPacket, rep.ServerCPUMillis*1000/float64(fwd)) {
			t.Fatalf("%s: forwarded %d, received %d, latency %+v, CPU %s µs per forwarded packet of %v ms",
				kind, fwd, rep.PacketsReceived, rep.Latency, fmtOpt(rep.ServerCPUPerPacket), rep.ServerCPUMillis)
		}
	}
}

func TestBenchMediaRefusesScenarios(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nodes", "4"}, "--nodes must be between 1 and 3, got 4"},
		{[]string{"--nodes", "0"}, "--nodes must be between 1 and 3, got 0"},
		{[]string{"--conferences", "51"}, "--conferences must be between 1 and 50, got 51"},
		{[]string{"--duration", "0s"}, "--duration must be positive and at most 5m0s, got 0s"},
		{[]string{"--duration", "6m"}, "--duration must be positive and at most 5m0s, got 6m0s"},
		{[]string{"--meeting", "1"}, "--meeting needs at least 2 participants, got 1"},
		{[]string{"--video", "2"}, "--video needs --meeting and at most its 0 participants, got 2"},
		{[]string{"--meeting", "3", "--video", "4"}, "--video needs --meeting and at most its 3 participants, got 4"},
		{[]string{"--publishers", "0"}, "--publishers and --subscribers must each be at least 1"},
		{[]string{"--subscribers", "-1"}, "cannot be negative"},
		{[]string{"--meeting", "20", "--conferences", "26"}, "520 participants in all; at most 500"},
		{[]string{"--udp", "multicast"}, `--udp must be shared or per-connection, got "multicast"`},
		{[]string{"--clients", "sip"}, `--clients must be native, livekit or both, got "sip"`},
		{[]string{"--clients", ""}, `--clients must be native, livekit or both, got ""`},
	} {
		r := runCLI(t, nil, append([]string{"bench", "media"}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: code %d, stderr %q, stdout %q; want code 2 and %q", tc.args, r.code, r.stderr, r.stdout, tc.want)
		}
	}
}

// fmtOpt prints an optional figure of the bench's report.
func fmtOpt(v *float64) string {
	if v == nil {
		return "none"
	}
	return strconv.FormatFloat(*v, 'f', 3, 64)
}

// near tells whether a per-packet figure of the report is the quotient it
// names, within the report's rounding (CPU in whole microseconds, figures to
// a thousandth). Received packets may outnumber forwarded ones (a NACK's
// retransmission is received but not forwarded again), so each figure is
// checked against its own count rather than against the other.
func near(got, want float64) bool {
	return math.Abs(got-want) <= 0.002+want*1e-3
}

func TestBenchMediaReplicasRefusals(t *testing.T) {
	env := []string{"ENTENTE_TEST_DATABASE_URL=postgres://db.invalid/x", "ENTENTE_TEST_NATS_URL=nats://nats.invalid:4222"}
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{env, []string{"--replicas", "1", "--meeting", "4"}, "--replicas must be between 2 and 3, got 1"},
		{env, []string{"--replicas", "4", "--meeting", "4"}, "--replicas must be between 2 and 3, got 4"},
		{env, []string{"--replicas", "2"}, "--replicas needs --meeting"},
		{env, []string{"--replicas", "2", "--meeting", "4", "--nodes", "2"}, "--replicas runs one node: --nodes must be 1, got 2"},
		{env, []string{"--replicas", "2", "--meeting", "4", "--conferences", "2"}, "--replicas runs one meeting: --conferences must be 1, got 2"},
		{env, []string{"--replicas", "2", "--meeting", "4", "--clients", "livekit"}, "--replicas measures native clients: --clients livekit is not supported with it"},
		{env, []string{"--replicas", "2", "--meeting", "4", "--udp", "shared"}, "--udp shared is not supported with it"},
		{env, []string{"--replicas", "2", "--meeting", "4", "--cpuprofile", "x.prof"}, "--cpuprofile profiles this process"},
		{nil, []string{"--replicas", "2", "--meeting", "4", "--nats-url", "nats://x:4222"}, "--replicas needs PostgreSQL: --database-url or ENTENTE_TEST_DATABASE_URL"},
		{nil, []string{"--replicas", "2", "--meeting", "4", "--database-url", "postgres://x/y"}, "--replicas needs NATS with JetStream: --nats-url or ENTENTE_TEST_NATS_URL"},
		{nil, []string{"--meeting", "4", "--nats-url", "nats://x:4222"}, "--database-url and --nats-url go with --replicas"},
	} {
		r := runCLI(t, tc.env, append([]string{"bench", "media"}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: code %d, stderr %q, stdout %q; want code 2 and %q", tc.args, r.code, r.stderr, r.stdout, tc.want)
		}
	}
}

// A short run of --replicas 2: the meeting fits on one replica, then spans
// two, every subscription carries exact media in both, and the clients cut
// by the owner's SIGKILL all receive media again.
func TestBenchMediaReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts replica processes and WebRTC clients")
	}
	dbURL, natsURL := replicaServices(t)
	env := append(os.Environ(), "ENTENTE_TEST_RUN_MAIN=1")
	r := runCLI(t, env, "bench", "media", "--replicas", "2", "--meeting", "4", "--duration", "2s",
		"--database-url", dbURL, "--nats-url", natsURL)
	if r.code != 0 {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
	var got scenario.ReplicaReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	for name, run := range map[string]scenario.ReplicaRun{"fits_on_one": got.FitsOnOne, "spans_two": got.SpansTwo} {
		if run.Subscriptions != 24 || run.SubscriptionsNoMedia != 0 || run.PayloadMismatches != 0 || run.ServerCPUPerPacket == nil {
			t.Fatalf("%s: %+v", name, run)
		}
		serving := 0
		for _, f := range run.ForwardedPackets {
			if f > 0 {
				serving++
			}
		}
		if want := map[string]int{"fits_on_one": 1, "spans_two": 2}[name]; serving != want {
			t.Fatalf("%s: %d replicas forwarded media (%v), want %d", name, serving, run.ForwardedPackets, want)
		}
	}
	if got.FitsOnOne.MaxParticipants != 4 || got.SpansTwo.MaxParticipants != 2 || got.FitsOnOne.TrunkPackets != 0 || got.SpansTwo.TrunkPackets == 0 {
		t.Fatalf("fits %+v, spans %+v", got.FitsOnOne, got.SpansTwo)
	}
	f := got.Failover
	if f == nil || f.Clients == 0 || f.MediaAgain.N != f.Clients || f.MediaAgain.Max <= 0 {
		t.Fatalf("failover %+v", f)
	}
}
