package main

import (
	"encoding/json"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/entente-org/entente/internal/mediabench/scenario"
)

func (a *app) benchMediaCommand() *cobra.Command {
	var o scenario.Options
	var clientsOnly bool
	c := &cobra.Command{
		Use:   "media",
		Short: "Measure the SFU under load from synthetic WebRTC clients",
		Long: `Start --nodes complete nodes on 127.0.0.1 in a temporary directory (local CA,
SQLite), federate them, and create --conferences conferences hosted on the first
node. Each conference has --publishers participants sending Opus (50 packets/s)
and VP8 (30 fps, simulcast layers q/h/f unless --simulcast=false, a keyframe
every 2 s) and --subscribers participants receiving every track; or, with
--meeting N, N participants that each publish and receive all the others.
Participants are local users of the nodes, spread round-robin over them, and
join through federation.

The clients run in a second process (this binary re-executed with
--clients-only), so that this process's CPU time is only the nodes'. After
every subscription carries media, they measure for --duration. Packets sent in
that window and still on their way are waited for, until none has arrived for
0.5 s (at most 10 s): a late packet counts in the latency, not as lost. Prints
one JSON object: the nodes' CPU time per forwarded packet, packets sent,
received and lost, kernel UDP receive-buffer drops, latency and
join-to-first-frame.

Each node uses a UDP port per peer connection, or with --udp shared one port
for all (media.udp_port). After the run, udp_floor gives the CPU one thread of
this machine spends, without any WebRTC, to send a datagram of the run's mean
size to as many loopback sockets as a track has subscribers: with sendto (as
pion sends) and with sendmmsg. No SFU forwards a packet here for less than the
sendmmsg figure.

--clients livekit has every participant be a LiveKit client instead (LiveKit's
Go SDK, github.com/livekit/server-sdk-go, used only as load), connecting to
the node's LiveKit signalling at /rtc with a token minted with the node's
credentials, publishing and receiving the same synthetic tracks. --clients
both measures the same scenario with native clients, then with LiveKit
clients, on the same nodes and each kind in conferences of its own, and
prints {"native": report, "livekit": report}.

With --replicas N (2 or 3), the node is one node run as N replica processes
(entente serve, cluster.nats_url) on 127.0.0.1, sharing a PostgreSQL schema
made for the run (--database-url, default $ENTENTE_TEST_DATABASE_URL) and
coordinating through NATS with JetStream (--nats-url, default
$ENTENTE_TEST_NATS_URL). The --meeting runs twice on fresh replicas: with
cluster.max_participants at its size, so it fits on one replica, then at half
of it, so it spans two replicas joined by a trunk. The WebSockets arrive at
the replicas in turn, as from a load balancer. CPU is the replica processes'
(from /proc). Then the replica that owns the spanning meeting is killed
(SIGKILL): its clients reconnect by themselves to the next replica, and
kill_to_media_ms is, per client cut, the time until every track of the
others flows to it again.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if clientsOnly {
				return scenario.RunClients(ctx, os.Stdin, a.stdout)
			}
			if o.Replicas != 0 {
				if o.DatabaseURL == "" {
					o.DatabaseURL = lookupEnv(a.environ, "ENTENTE_TEST_DATABASE_URL")
				}
				if o.NATSURL == "" {
					o.NATSURL = lookupEnv(a.environ, "ENTENTE_TEST_NATS_URL")
				}
			}
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			env := scenario.Env{
				Stderr: a.stderr, Version: version, Environ: a.environ,
				ClientsArgs: []string{"bench", "media", "--clients-only"},
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "  ")
			if o.Replicas != 0 {
				res, err := scenario.RunReplicas(ctx, o, env)
				if err != nil {
					return err
				}
				return enc.Encode(res)
			}
			res, err := scenario.Run(ctx, o, env)
			if err != nil {
				return err
			}
			if len(res) == 2 {
				return enc.Encode(scenario.Comparison{Native: res[0], LiveKit: res[1]})
			}
			return enc.Encode(res[0])
		},
	}
	c.Flags().IntVar(&o.Nodes, "nodes", 1, "nodes to start (1 to 3); conferences are hosted on the first")
	c.Flags().IntVar(&o.Conferences, "conferences", 1, "conferences running at once")
	c.Flags().IntVar(&o.Publishers, "publishers", 1, "publishing participants per conference")
	c.Flags().IntVar(&o.Subscribers, "subscribers", 2, "receiving participants per conference")
	c.Flags().IntVar(&o.Meeting, "meeting", 0, "instead of --publishers/--subscribers: participants per conference that all publish and receive")
	c.Flags().DurationVar(&o.Duration, "duration", 10*time.Second, "how long to measure once media flows")
	c.Flags().BoolVar(&o.Simulcast, "simulcast", true, "send video as three simulcast layers")
	c.Flags().BoolVar(&clientsOnly, "clients-only", false, "run the clients of a plan read from standard input (used by bench media itself)")
	c.Flags().IntVar(&o.Video, "video", -1, "with --meeting: how many participants also publish a camera (default all); everyone publishes audio")
	c.Flags().StringVar(&o.UDP, "udp", scenario.UDPPerConnection, "how each node uses UDP for media, as media.udp_port: per-connection (a port per peer connection, the default of media.udp_port 0) or shared (one port per node)")
	c.Flags().StringVar(&o.Clients, "clients", scenario.ClientsNative, "kind of client: native (Entente's signalling), livekit (LiveKit's Go SDK at /rtc), or both, measured one after the other")
	c.Flags().StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the nodes over the measurement window to this file (go tool pprof); with --clients both, one file per kind, its name suffixed -native or -livekit")
	c.Flags().IntVar(&o.Replicas, "replicas", 0, "run the node as this many replica processes (2 or 3) over PostgreSQL and NATS; needs --meeting")
	c.Flags().StringVar(&o.DatabaseURL, "database-url", "", "with --replicas: PostgreSQL server for the node's store (default $ENTENTE_TEST_DATABASE_URL)")
	c.Flags().StringVar(&o.NATSURL, "nats-url", "", "with --replicas: NATS server with JetStream (default $ENTENTE_TEST_NATS_URL)")
	_ = c.Flags().MarkHidden("clients-only")
	return c
}

// lookupEnv returns the value of key in environ, "" if absent.
func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}
