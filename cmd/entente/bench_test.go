package main

import (
	"context"
	"encoding/json"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/entente-org/entente/internal/fedbench"
)

func TestBenchFederationPrintsOneJSONObject(t *testing.T) {
	r := runCLI(t, nil, "bench", "federation", "--invites", "3", "--messages", "20", "--duration", "200ms")
	if r.code != 0 {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("stdout is not one JSON object: %v: %q", err, r.stdout)
	}
	var keys []string
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"cores", "envelope_sign_verify_per_s", "go", "invite_to_accepted_ms", "outbox_messages", "outbox_msgs_per_s", "store"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	var latency map[string]json.RawMessage
	if err := json.Unmarshal(raw["invite_to_accepted_ms"], &latency); err != nil {
		t.Fatal(err)
	}
	keys = keys[:0]
	for k := range latency {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"max", "n", "p50", "p95"}; !slices.Equal(keys, want) {
		t.Fatalf("invite_to_accepted_ms keys %v, want %v", keys, want)
	}

	var got fedbench.Report
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	l := got.InviteToAccepted
	if l.N != 3 || got.OutboxMessages != 20 || got.Store != "sqlite" || got.Cores != runtime.NumCPU() || got.Go != runtime.Version() {
		t.Fatalf("result %+v", got)
	}
	if got.EnvelopesPerSecond <= 0 || got.OutboxPerSecond <= 0 || l.P50 <= 0 || l.P95 < l.P50 || l.Max < l.P95 {
		t.Fatalf("values not positive and ordered: %+v", got)
	}
	if r.stderr != "" {
		t.Fatalf("stderr %q", r.stderr)
	}
}

func TestBenchFederationRefusesUnboundedRuns(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--invites", "0"}, "--invites must be between 1 and 10000, got 0"},
		{[]string{"--messages", "100001"}, "--messages must be between 1 and 100000, got 100001"},
		{[]string{"--duration", "0s"}, "--duration must be positive and at most 10m0s, got 0s"},
		{[]string{"--duration", "11m"}, "--duration must be positive and at most 10m0s, got 11m0s"},
		{[]string{"--database-url", "mysql://db/x"}, "--database-url must be a postgres:// URL"},
		{[]string{"--flood", "everyone"}, `--flood must be none, untrusted or trusted, got "everyone"`},
		{[]string{"--flood-workers", "0"}, "--flood-workers must be between 1 and 64, got 0"},
		{[]string{"--flood-requests", "10000001"}, "--flood-requests must be between 1 and 10000000, got 10000001"},
		{[]string{"--flood-body", "1048577"}, "--flood-body must be between 4096 and 1048576 bytes, got 1048577"},
	}
	for _, tc := range cases {
		r := runCLI(t, nil, append([]string{"bench", "federation"}, tc.args...)...)
		if r.code != 2 || strings.TrimSpace(r.stderr) != "entente: "+tc.want || r.stdout != "" {
			t.Errorf("%v: code %d, stdout %q, stderr %q; want 2 and %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}
}

func TestBenchWithoutSubcommandShowsHelp(t *testing.T) {
	r := runCLI(t, nil, "bench")
	if r.code != 0 || !strings.Contains(r.stdout, "federation") || !strings.Contains(r.stdout, "Usage:") {
		t.Fatalf("%+v", r)
	}
}

func TestBenchFederationOnPostgresDropsItsSchemas(t *testing.T) {
	base := os.Getenv("ENTENTE_TEST_DATABASE_URL")
	if base == "" {
		t.Skip("ENTENTE_TEST_DATABASE_URL is not set")
	}
	r := runCLI(t, nil, "bench", "federation", "--invites", "2", "--messages", "4", "--duration", "50ms", "--database-url", base)
	if r.code != 0 {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
	var got fedbench.Report
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got.Store != "postgres" || got.InviteToAccepted.N != 2 || got.OutboxMessages != 4 || got.OutboxPerSecond <= 0 {
		t.Fatalf("result %+v", got)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'entente_bench_%'`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d bench schemas left behind", left)
	}
}

// TestBenchFederationFlood runs both flood modes briefly: the flood reaches
// both nodes, an untrusted flooder is refused (403) every time, a trusted
// one is read and refused for its unknown conference (404) or slowed down
// (429), and the invitations are measured again during it.
func TestBenchFederationFlood(t *testing.T) {
	for _, c := range []struct {
		mode    string
		allowed []string
	}{
		{"untrusted", []string{"403"}},
		{"trusted", []string{"404", "429"}},
	} {
		r := runCLI(t, nil, "bench", "federation", "--invites", "2", "--messages", "5", "--duration", "100ms",
			"--flood", c.mode, "--flood-workers", "2", "--flood-requests", "400")
		if r.code != 0 {
			t.Fatalf("%s: code %d, stderr %q", c.mode, r.code, r.stderr)
		}
		var got fedbench.Report
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%s: %v: %q", c.mode, err, r.stdout)
		}
		f := got.Flood
		if f == nil || f.Mode != c.mode || f.Workers != 2 || f.BodyBytes != 1<<20 || f.Requests < 1 || f.Requests > 400 {
			t.Fatalf("%s: flood %+v", c.mode, f)
		}
		var answered int64
		for status, n := range f.Statuses {
			if !slices.Contains(c.allowed, status) {
				t.Errorf("%s: %d answers %s, want only %v", c.mode, n, status, c.allowed)
			}
			answered += n
		}
		if answered < 1 || answered > f.Requests {
			t.Errorf("%s: %d answers for %d requests", c.mode, answered, f.Requests)
		}
		if l := f.InviteToAccepted; l.N != 2 || l.P50 <= 0 || l.P95 < l.P50 {
			t.Errorf("%s: invitations during the flood %+v", c.mode, l)
		}
	}
}

// The partition measurement cuts two nodes apart for a few seconds while both
// write chat and the host changes the log: every line arrives once, in
// order, and the replica converges.
func TestBenchFederationPartition(t *testing.T) {
	r := runCLI(t, nil, "bench", "federation", "--partition", "3s")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
	var got fedbench.PartitionReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not the JSON of a partition run: %v: %q", err, r.stdout)
	}
	// One line a second from each side, the first at the cut; the last tick
	// may fall on the end of the cut.
	if got.PartitionSeconds != 3 || got.ChatSent < 6 || got.ChatSent > 8 || got.ChatSent%2 != 0 || got.LogEventsInCut != 1 {
		t.Fatalf("work during the cut: %+v", got)
	}
	if got.ChatArrived != got.ChatSent || got.ChatDuplicated != 0 || got.ChatReordered != 0 || got.ChatExpired != 0 {
		t.Fatalf("chat after the heal: %+v", got)
	}
	if got.ReplicaConverged <= 0 || got.ChatComplete <= 0 || got.Store != "sqlite" || got.Cores != runtime.NumCPU() || got.Go != runtime.Version() {
		t.Fatalf("result %+v", got)
	}
	for bad, shown := range map[string]string{"-1s": "-1s", "11m": "11m0s"} {
		r := runCLI(t, nil, "bench", "federation", "--partition", bad)
		if want := "entente: --partition must be at most 10m0s, got " + shown; r.code != 2 || strings.TrimSpace(r.stderr) != want || r.stdout != "" {
			t.Errorf("--partition %s: code %d, stdout %q, stderr %q; want 2 and %q", bad, r.code, r.stdout, r.stderr, want)
		}
	}
}
