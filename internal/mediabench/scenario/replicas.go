package scenario

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"time"

	"github.com/entente-org/entente/internal/localreplicas"
	"github.com/entente-org/entente/internal/mediabench"
)

// `bench media --replicas N`: one node as N `entente serve` processes over
// PostgreSQL and NATS (docs/replicas.md). The same meeting runs twice, on
// fresh replicas each time: once with cluster.max_participants at the
// meeting's size, so it fits on one replica, and once at half of it, so it
// spans two replicas joined by a trunk. Then the replica that owns the
// spanning meeting is killed (SIGKILL) and the bench measures how long its
// clients, which reconnect by themselves, take to receive media again.

// maxReplicas bounds --replicas.
const maxReplicas = 3

// ReplicaReport is the JSON that `entente bench media --replicas N` prints.
type ReplicaReport struct {
	Scenario ReplicaScenario `json:"scenario"`
	// FitsOnOne and SpansTwo are the same meeting on one replica and across
	// two.
	FitsOnOne ReplicaRun `json:"fits_on_one"`
	SpansTwo  ReplicaRun `json:"spans_two"`
	// Failover is the kill of the spanning meeting's owner replica.
	Failover *Failover `json:"failover"`
	Clients  string    `json:"clients"`
	Cores    int       `json:"cores"`
	Go       string    `json:"go"`
}

// ReplicaScenario is what was run.
type ReplicaScenario struct {
	Replicas        int     `json:"replicas"`
	Meeting         int     `json:"meeting"`
	VideoPublishers int     `json:"video_publishers"`
	DurationS       float64 `json:"duration_s"`
	Simulcast       bool    `json:"simulcast"`
}

// ReplicaRun is one meeting's measurement. CPU is the sum over the replica
// processes (user and system time from /proc), per packet their SFUs
// forwarded to subscribers.
type ReplicaRun struct {
	MaxParticipants      int      `json:"max_participants"`
	ServerCPUPerPacket   *float64 `json:"server_cpu_us_per_forwarded_packet"`
	ServerCPUPerReceived *float64 `json:"server_cpu_us_per_received_packet"`
	ServerCPUMillis      float64  `json:"server_cpu_ms"`
	// ForwardedPackets are per replica ID; replicas that served nobody
	// forwarded nothing.
	ForwardedPackets map[string]int64 `json:"forwarded_packets"`
	// TrunkPackets crossed trunks between the replicas, both directions.
	TrunkPackets         int64              `json:"trunk_packets"`
	PacketsSent          int64              `json:"packets_sent"`
	PacketsReceived      int64              `json:"packets_received"`
	PacketsLost          int64              `json:"packets_lost"`
	PayloadMismatches    int64              `json:"payload_mismatches"`
	Subscriptions        int                `json:"subscriptions"`
	SubscriptionsNoMedia int                `json:"subscriptions_without_media"`
	UDPRcvbufErrors      int64              `json:"udp_rcvbuf_errors"`
	Latency              mediabench.Summary `json:"latency_ms"`
}

// Failover is what the clients of a killed replica saw.
type Failover struct {
	// Replica is the ID of the replica killed: the meeting's owner.
	Replica string `json:"replica_killed"`
	// Clients is how many participants were served by it or reached it
	// first, and so lost their connection.
	Clients int `json:"clients_cut"`
	// MediaAgain is, over those clients, the time from the SIGKILL until
	// every track of the others flows to the client again, on the replica
	// it reconnected to.
	MediaAgain mediabench.Summary `json:"kill_to_media_ms"`
}

// RunReplicas runs the scenario of --replicas.
func RunReplicas(ctx context.Context, o Options, env Env) (ReplicaReport, error) {
	res := ReplicaReport{
		Scenario: ReplicaScenario{Replicas: o.Replicas, Meeting: o.Meeting, VideoPublishers: o.Meeting,
			DurationS: o.Duration.Seconds(), Simulcast: o.Simulcast},
		Clients: "subprocess", Cores: runtime.NumCPU(), Go: runtime.Version(),
	}
	if o.Video >= 0 {
		res.Scenario.VideoPublishers = o.Video
	}
	var err error
	if res.FitsOnOne, _, err = replicaRun(ctx, o, env, o.Meeting, false); err != nil {
		return res, fmt.Errorf("meeting on one replica: %w", err)
	}
	if res.SpansTwo, res.Failover, err = replicaRun(ctx, o, env, (o.Meeting+1)/2, true); err != nil {
		return res, fmt.Errorf("meeting across two replicas: %w", err)
	}
	return res, nil
}

// replicaRun starts the replicas with maxParticipants each, runs the
// meeting and, with failover, kills the owner replica afterwards.
func replicaRun(ctx context.Context, o Options, env Env, maxParticipants int, failover bool) (run ReplicaRun, fo *Failover, err error) {
	run.MaxParticipants = maxParticipants
	self, err := os.Executable()
	if err != nil {
		return run, nil, err
	}
	dir, err := os.MkdirTemp("", "entente-bench-replicas-")
	if err != nil {
		return run, nil, err
	}
	defer os.RemoveAll(dir)
	sctx, cancel := context.WithTimeout(ctx, mediaSetupLimit)
	defer cancel()
	n, err := localreplicas.Start(sctx, localreplicas.Options{
		Command: []string{self}, Env: env.Environ, Replicas: o.Replicas,
		DatabaseURL: o.DatabaseURL, NATSURL: o.NATSURL, MaxParticipants: maxParticipants,
		Dir: dir, Log: env.Stderr, Name: "Bench replicated node",
	})
	if err != nil {
		return run, nil, err
	}
	defer func() {
		if cerr := n.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	conf, err := n.Conference(sctx, "organiser", "Media benchmark across replicas")
	if err != nil {
		return run, nil, err
	}
	plan := mediabench.Plan{CAPEM: string(n.CA.PEM), Duration: o.Duration}
	for j := range o.Meeting {
		id := fmt.Sprintf("p%d", j+1)
		_, tok, err := n.Participant(sctx, conf, id, "Participant "+id)
		if err != nil {
			return run, nil, err
		}
		// The replicas stand behind a load balancer: the WebSockets
		// arrive at each in turn, and the replicas route them.
		p := mediabench.Participant{
			Name: id, Conference: conf, URL: n.MediaURL(j%len(n.Replicas), conf), Token: tok,
			Audio: true, Video: o.Video < 0 || j < o.Video, Simulcast: o.Simulcast, Subscribe: true,
		}
		for k := 1; k < len(n.Replicas); k++ {
			p.Fallback = append(p.Fallback, n.MediaURL((j+k)%len(n.Replicas), conf))
		}
		plan.Participants = append(plan.Participants, p)
	}
	if failover {
		plan.Failover = true
	}
	sample := func() (serverSample, error) { return sampleReplicas(ctx, n) }
	var kill *killer
	if failover {
		kill = &killer{n: n, conference: conf}
	}
	var act func()
	if kill != nil {
		act = kill.act
	}
	before, after, rep, err := runClientsSampled(ctx, env, plan, "", sample, act)
	if err != nil {
		return run, nil, err
	}
	run.PacketsSent, run.PacketsReceived, run.PacketsLost = rep.PacketsSent, rep.PacketsReceived, rep.PacketsLost
	run.PayloadMismatches = rep.PayloadMismatches
	run.Subscriptions, run.SubscriptionsNoMedia = rep.Subscriptions, rep.SubscriptionsWithoutMedia
	run.Latency = rep.Latency
	run.UDPRcvbufErrors = after.rcvbufErrors - before.rcvbufErrors
	cpu := after.cpu - before.cpu
	run.ServerCPUMillis = math.Round(float64(cpu.Microseconds())) / 1000
	run.ForwardedPackets = map[string]int64{}
	var forwarded int64
	for i, r := range n.Replicas {
		f := after.forwarded[i] - before.forwarded[i]
		run.ForwardedPackets[r.ID] = f
		forwarded += f
		run.TrunkPackets += after.trunkPackets[i] - before.trunkPackets[i]
	}
	if forwarded > 0 {
		v := math.Round(float64(cpu.Nanoseconds())/float64(forwarded)) / 1000
		run.ServerCPUPerPacket = &v
	}
	if rep.PacketsReceived > 0 {
		v := math.Round(float64(cpu.Nanoseconds())/float64(rep.PacketsReceived)) / 1000
		run.ServerCPUPerReceived = &v
	}
	if failover {
		if kill.err != nil {
			return run, nil, kill.err
		}
		if rep.Failover == nil {
			return run, nil, errors.New("the clients reported nothing of the failover")
		}
		fo = &Failover{Replica: kill.replica, Clients: rep.Failover.Cut}
		var waits []int64
		for _, at := range rep.Failover.MediaAgainNS {
			waits = append(waits, at-kill.at.UnixNano())
		}
		fo.MediaAgain = mediabench.Summarize(waits)
	}
	return run, fo, nil
}

// killer kills the meeting's owner replica when the clients ask for it.
type killer struct {
	n          *localreplicas.Node
	conference string
	replica    string
	at         time.Time
	err        error
}

// act is called when the clients process says it is ready for the kill.
func (k *killer) act() {
	if k == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	owner, err := k.n.Owner(ctx, k.conference)
	if err != nil {
		k.err = err
		return
	}
	k.replica = k.n.Replicas[owner].ID
	k.at = time.Now()
	k.err = k.n.Kill(owner)
}

// sampleReplicas reads the replica processes' CPU time and counters.
func sampleReplicas(ctx context.Context, n *localreplicas.Node) (serverSample, error) {
	var s serverSample
	var err error
	if s.cpu, err = n.CPU(); err != nil {
		return s, err
	}
	for i := range n.Replicas {
		var f, tp float64
		if n.Running(i) {
			if f, err = n.Metric(ctx, i, "entente_media_forwarded_packets_total"); err != nil {
				return s, err
			}
			if tp, err = n.Metric(ctx, i, "entente_media_trunk_sent_packets_total"); err != nil {
				return s, err
			}
		}
		s.forwarded = append(s.forwarded, int64(f))
		s.trunkPackets = append(s.trunkPackets, int64(tp))
	}
	s.rcvbufErrors, err = mediabench.UDPRcvbufErrors()
	return s, err
}

// validateReplicas refuses what --replicas cannot run, naming the flag.
func (o Options) validateReplicas() error {
	switch {
	case o.Replicas < 2 || o.Replicas > maxReplicas:
		return fmt.Errorf("--replicas must be between 2 and %d, got %d", maxReplicas, o.Replicas)
	case o.Nodes != 1:
		return fmt.Errorf("--replicas runs one node: --nodes must be 1, got %d", o.Nodes)
	case o.Meeting < 2:
		return fmt.Errorf("--replicas needs --meeting (at least 2 participants, so that half of it spans two replicas)")
	case o.Conferences != 1:
		return fmt.Errorf("--replicas runs one meeting: --conferences must be 1, got %d", o.Conferences)
	case o.UDP != UDPPerConnection:
		return fmt.Errorf("--replicas uses a UDP port per connection: --udp shared is not supported with it")
	case o.Clients != "" && o.Clients != ClientsNative:
		return fmt.Errorf("--replicas measures native clients: --clients %s is not supported with it", o.Clients)
	case o.CPUProfile != "":
		return fmt.Errorf("--cpuprofile profiles this process, and with --replicas the replicas are other processes")
	case o.DatabaseURL == "":
		return fmt.Errorf("--replicas needs PostgreSQL: --database-url or ENTENTE_TEST_DATABASE_URL")
	case o.NATSURL == "":
		return fmt.Errorf("--replicas needs NATS with JetStream: --nats-url or ENTENTE_TEST_NATS_URL")
	}
	return nil
}
