package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/mediabench"
	"github.com/entente-org/entente/internal/node"
)

type benchMediaOptions struct {
	nodes, conferences      int
	publishers, subscribers int
	meeting                 int
	duration                time.Duration
	simulcast               bool
	clientsOnly             bool
	cpuProfile              string
	// video is how many of a meeting's participants also publish a camera;
	// -1 means all of them.
	video int
	// udp is how the nodes use UDP: one shared port each, as in
	// production (media.udp_port), or a port per connection.
	udp string
}

// Bounds of `bench media`, so that every scenario ends.
const (
	maxMediaNodes       = 3
	maxMediaConferences = 50
	maxMediaDuration    = 5 * time.Minute
	// mediaSetupLimit bounds everything around the measurement: starting
	// nodes, federating, connecting the clients.
	mediaSetupLimit = 3 * time.Minute
	// maxPlanBytes bounds the plan a --clients-only process reads.
	maxPlanBytes = 8 << 20
	// Values of --udp.
	udpShared        = "shared"
	udpPerConnection = "per-connection"
	// Lines the clients process writes; see benchMediaClients.
	lineWindowStart = "window-start"
	lineWindowEnd   = "window-end"
)

func (a *app) benchMediaCommand() *cobra.Command {
	var o benchMediaOptions
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
sendmmsg figure.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if o.clientsOnly {
				return a.benchMediaClients(ctx, os.Stdin)
			}
			if err := o.validate(); err != nil {
				return err
			}
			res, err := a.benchMedia(ctx, o)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		},
	}
	c.Flags().IntVar(&o.nodes, "nodes", 1, "nodes to start (1 to 3); conferences are hosted on the first")
	c.Flags().IntVar(&o.conferences, "conferences", 1, "conferences running at once")
	c.Flags().IntVar(&o.publishers, "publishers", 1, "publishing participants per conference")
	c.Flags().IntVar(&o.subscribers, "subscribers", 2, "receiving participants per conference")
	c.Flags().IntVar(&o.meeting, "meeting", 0, "instead of --publishers/--subscribers: participants per conference that all publish and receive")
	c.Flags().DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure once media flows")
	c.Flags().BoolVar(&o.simulcast, "simulcast", true, "send video as three simulcast layers")
	c.Flags().BoolVar(&o.clientsOnly, "clients-only", false, "run the clients of a plan read from standard input (used by bench media itself)")
	c.Flags().IntVar(&o.video, "video", -1, "with --meeting: how many participants also publish a camera (default all); everyone publishes audio")
	c.Flags().StringVar(&o.udp, "udp", udpPerConnection, "how each node uses UDP for media, as media.udp_port: per-connection (a port per peer connection, the default of media.udp_port 0) or shared (one port per node)")
	c.Flags().StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the nodes over the measurement window to this file (go tool pprof)")
	_ = c.Flags().MarkHidden("clients-only")
	return c
}

func (o benchMediaOptions) validate() error {
	if o.nodes < 1 || o.nodes > maxMediaNodes {
		return usagef("--nodes must be between 1 and %d, got %d", maxMediaNodes, o.nodes)
	}
	if o.conferences < 1 || o.conferences > maxMediaConferences {
		return usagef("--conferences must be between 1 and %d, got %d", maxMediaConferences, o.conferences)
	}
	if o.duration <= 0 || o.duration > maxMediaDuration {
		return usagef("--duration must be positive and at most %s, got %s", maxMediaDuration, o.duration)
	}
	if o.meeting < 0 || o.publishers < 0 || o.subscribers < 0 {
		return usagef("--meeting, --publishers and --subscribers cannot be negative")
	}
	if o.meeting == 1 {
		return usagef("--meeting needs at least 2 participants, got 1")
	}
	if o.udp != udpShared && o.udp != udpPerConnection {
		return usagef("--udp must be %s or %s, got %q", udpShared, udpPerConnection, o.udp)
	}
	if o.video >= 0 && (o.meeting == 0 || o.video > o.meeting) {
		return usagef("--video needs --meeting and at most its %d participants, got %d", o.meeting, o.video)
	}
	if o.video < -1 {
		return usagef("--video cannot be negative, got %d", o.video)
	}
	if o.meeting == 0 && (o.publishers < 1 || o.subscribers < 1) {
		return usagef("--publishers and --subscribers must each be at least 1 (or use --meeting)")
	}
	if total := o.conferences * o.perConference(); total > mediabench.MaxParticipants {
		return usagef("%d participants in all; at most %d", total, mediabench.MaxParticipants)
	}
	return nil
}

func (o benchMediaOptions) perConference() int {
	if o.meeting > 0 {
		return o.meeting
	}
	return o.publishers + o.subscribers
}

// mediaBench is the JSON that `entente bench media` prints.
type mediaBench struct {
	Scenario mediaScenario `json:"scenario"`
	// CPU is the whole process's: the nodes share it, so it is not split
	// per node; forwarded packets are given per node.
	ServerCPUPerPacket *float64 `json:"server_cpu_us_per_forwarded_packet"`
	// The SFU counts a packet as forwarded to every subscriber of the
	// track, whichever simulcast layer it selected; per packet the clients
	// received is the cost of what was actually delivered.
	ServerCPUPerReceived *float64 `json:"server_cpu_us_per_received_packet"`
	// ServerUserCPUPerPacket is the user-space part: on loopback the
	// kernel time of a send includes delivering the packet to the
	// receiving socket, which on a real network the receiver's host pays.
	ServerUserCPUPerPacket *float64           `json:"server_user_cpu_us_per_forwarded_packet"`
	ServerCPUMillis        float64            `json:"server_cpu_ms"`
	ForwardedPackets       map[string]int64   `json:"forwarded_packets"`
	ServerMallocsPerPacket *float64           `json:"server_mallocs_per_forwarded_packet"`
	PacketsSent            int64              `json:"packets_sent"`
	PacketsReceived        int64              `json:"packets_received"`
	PacketsLost            int64              `json:"packets_lost"`
	Subscriptions          int                `json:"subscriptions"`
	SubscriptionsNoMedia   int                `json:"subscriptions_without_media"`
	UDPRcvbufErrors        int64              `json:"udp_rcvbuf_errors"`
	Latency                mediabench.Summary `json:"latency_ms"`
	JoinToFirstFrame       mediabench.Summary `json:"join_to_first_frame_ms"`
	// TrunkEfficiency is the payload bytes sent on trunks divided by the
	// payload bytes of the tracks wanted across them (each once per trunk,
	// at the layer its subscribers there received); 1 is ideal, and it must
	// not grow with the number of remote subscribers. Null with one node.
	TrunkEfficiency *float64 `json:"trunk_efficiency"`
	// UDPFloor is the CPU one thread spends to send one datagram of the
	// run's mean forwarded size to as many loopback sockets as a track has
	// subscribers, without WebRTC: no SFU forwards a packet for less.
	// Measured after the clients have gone.
	UDPFloor *mediabench.Floor `json:"udp_floor"`
	Clients  string            `json:"clients"`
	Cores    int               `json:"cores"`
	Go       string            `json:"go"`
}

type mediaScenario struct {
	Nodes       int `json:"nodes"`
	Conferences int `json:"conferences"`
	Publishers  int `json:"publishers"`
	Subscribers int `json:"subscribers"`
	Meeting     int `json:"meeting"`
	// VideoPublishers is, in a meeting, how many participants per
	// conference publish a camera besides their microphone.
	VideoPublishers int     `json:"video_publishers,omitempty"`
	Participants    int     `json:"participants"`
	DurationS       float64 `json:"duration_s"`
	Simulcast       bool    `json:"simulcast"`
	UDP             string  `json:"udp"`
}

func (a *app) benchMedia(ctx context.Context, o benchMediaOptions) (mediaBench, error) {
	res := mediaBench{
		Scenario: mediaScenario{Nodes: o.nodes, Conferences: o.conferences, Meeting: o.meeting,
			Participants: o.conferences * o.perConference(), DurationS: o.duration.Seconds(), Simulcast: o.simulcast, UDP: o.udp},
		ForwardedPackets: map[string]int64{},
		Clients:          "subprocess",
		Cores:            runtime.NumCPU(),
		Go:               runtime.Version(),
	}
	if o.meeting == 0 {
		res.Scenario.Publishers, res.Scenario.Subscribers = o.publishers, o.subscribers
	} else {
		res.Scenario.VideoPublishers = o.perConference()
		if o.video >= 0 {
			res.Scenario.VideoPublishers = o.video
		}
	}
	dir, err := os.MkdirTemp("", "entente-bench-media-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	log := newLogger(a.stderr, "text", "warn")
	ca, caFile, err := localCA(dir, "bench", 24*time.Hour)
	if err != nil {
		return res, err
	}

	var nodes []*node.Node
	defer func() { shutdownAll(nodes) }()
	for i := range o.nodes {
		name := fmt.Sprintf("Bench Node %d", i+1)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return res, fmt.Errorf("bench node %s: %w", name, err)
		}
		var udpPort int
		if o.udp == udpShared {
			if udpPort, err = freeUDPPort(); err != nil {
				l.Close()
				return res, fmt.Errorf("bench node %s: %w", name, err)
			}
		}
		n, err := startLocalNode(ctx, l, localNode{
			name: name, dataDir: filepath.Join(dir, fmt.Sprintf("node-%d", i+1)), ca: ca, caFile: caFile,
			log: log.With("institution", name), udpPort: udpPort,
		})
		if err != nil {
			return res, fmt.Errorf("bench node %s: %w", name, err)
		}
		nodes = append(nodes, n)
	}
	if len(nodes) > 1 {
		if err := demoTrust(ctx, nodes); err != nil {
			return res, err
		}
		if err := demoFederate(ctx, nodes); err != nil {
			return res, err
		}
	}
	plan := mediabench.Plan{CAPEM: string(ca.PEM), Duration: o.duration}
	for k := range o.conferences {
		ps, err := benchMediaConference(ctx, nodes, k, o)
		if err != nil {
			return res, err
		}
		plan.Participants = append(plan.Participants, ps...)
	}

	before, after, rep, err := a.runMediaClients(ctx, nodes, plan, o.cpuProfile)
	if err != nil {
		return res, err
	}
	res.PacketsSent, res.PacketsReceived, res.PacketsLost = rep.PacketsSent, rep.PacketsReceived, rep.PacketsLost
	res.Subscriptions, res.SubscriptionsNoMedia = rep.Subscriptions, rep.SubscriptionsWithoutMedia
	res.Latency, res.JoinToFirstFrame = rep.Latency, rep.JoinToFirstFrame
	res.UDPRcvbufErrors = after.rcvbufErrors - before.rcvbufErrors
	cpu := after.cpu - before.cpu
	res.ServerCPUMillis = math.Round(float64(cpu.Microseconds())) / 1000
	var forwarded, forwardedBytes int64
	for i, n := range nodes {
		f := after.forwarded[i] - before.forwarded[i]
		res.ForwardedPackets[n.Name()] = f
		forwarded += f
		forwardedBytes += after.forwardedBytes[i] - before.forwardedBytes[i]
	}
	if forwarded > 0 {
		perPacket := math.Round(float64(cpu.Nanoseconds())/float64(forwarded)) / 1000
		mallocs := math.Round(float64(after.mallocs-before.mallocs)/float64(forwarded)*100) / 100
		res.ServerCPUPerPacket, res.ServerMallocsPerPacket = &perPacket, &mallocs
		perPacketUser := math.Round(float64((after.userCPU-before.userCPU).Nanoseconds())/float64(forwarded)) / 1000
		res.ServerUserCPUPerPacket = &perPacketUser
	}
	if rep.PacketsReceived > 0 {
		perReceived := math.Round(float64(cpu.Nanoseconds())/float64(rep.PacketsReceived)) / 1000
		res.ServerCPUPerReceived = &perReceived
	}
	var trunkBytes int64
	for i := range nodes {
		trunkBytes += after.trunkBytes[i] - before.trunkBytes[i]
	}
	host, _ := url.Parse(nodes[0].PublicURL())
	if wanted := mediabench.TrunkWanted(rep.Flows, host.Host); wanted > 0 {
		eff := math.Round(float64(trunkBytes)/float64(wanted)*1000) / 1000
		res.TrunkEfficiency = &eff
	}
	if forwarded > 0 {
		// The mean datagram: the payload forwarded, an RTP header and
		// the SRTP authentication tag (AES-GCM, 16 bytes).
		size := int(forwardedBytes/forwarded) + rtpHeaderBytes + srtpTagBytes
		floor, err := mediabench.MeasureFloor(o.sinksPerTrack(), size)
		if err != nil {
			return res, err
		}
		res.UDPFloor = &floor
	}
	return res, nil
}

// Sizes added to a forwarded payload on the wire, for the UDP floor.
const (
	rtpHeaderBytes = 12
	srtpTagBytes   = 16
)

// sinksPerTrack is how many participants of a conference receive each
// track: all the others in a meeting, the subscribers otherwise.
func (o benchMediaOptions) sinksPerTrack() int {
	if o.meeting > 0 {
		return o.meeting - 1
	}
	return max(o.subscribers, 1)
}

func shutdownAll(nodes []*node.Node) {
	done := make(chan struct{}, len(nodes))
	for _, n := range nodes {
		go func() {
			n.Shutdown(context.Background())
			done <- struct{}{}
		}()
	}
	for range nodes {
		<-done
	}
}

// benchMediaConference creates conference k on the first node, has every
// other node invited and accept, and makes each participant a local user of
// its node who joined the conference there.
func benchMediaConference(ctx context.Context, nodes []*node.Node, k int, o benchMediaOptions) ([]mediabench.Participant, error) {
	host := nodes[0]
	organiser, err := benchUser(ctx, host, fmt.Sprintf("c%d-organiser", k+1), "Organiser")
	if err != nil {
		return nil, err
	}
	conf, err := host.Federation().CreateConference(ctx, organiser, fmt.Sprintf("Media benchmark %d", k+1), nil)
	if err != nil {
		return nil, fmt.Errorf("conference %d: %w", k+1, err)
	}
	for _, n := range nodes[1:] {
		if _, err := host.Federation().Invite(ctx, organiser, conf.ID, n.DID(), nil); err != nil {
			return nil, fmt.Errorf("conference %d: invite %s: %w", k+1, n.Name(), err)
		}
	}
	for _, n := range nodes[1:] {
		delegate, err := benchUser(ctx, n, fmt.Sprintf("c%d-delegate", k+1), "Delegate")
		if err != nil {
			return nil, err
		}
		err = waitFor(ctx, 10*time.Millisecond, benchStepLimit, n.Name()+" to receive the invitation to "+conf.ID, func() (bool, error) {
			return nodeState(ctx, n, conf.ID, n.DID(), "invited")
		})
		if err != nil {
			return nil, err
		}
		if _, _, err := n.Federation().Answer(ctx, delegate, conf.ID, true); err != nil {
			return nil, fmt.Errorf("conference %d: %s accepts: %w", k+1, n.Name(), err)
		}
		err = waitFor(ctx, 10*time.Millisecond, benchStepLimit, "the acceptance of "+n.Name()+" at the host", func() (bool, error) {
			return nodeState(ctx, host, conf.ID, n.DID(), "accepted")
		})
		if err != nil {
			return nil, err
		}
	}

	var out []mediabench.Participant
	for j := range o.perConference() {
		n := nodes[j%len(nodes)]
		id := fmt.Sprintf("c%d-p%d", k+1, j+1)
		u, err := benchUser(ctx, n, id, fmt.Sprintf("Participant %d.%d", k+1, j+1))
		if err != nil {
			return nil, err
		}
		tok, err := accounts.IssueToken(ctx, n.Store(), u.ID, 24*time.Hour, time.Now())
		if err != nil {
			return nil, fmt.Errorf("token for %s: %w", id, err)
		}
		if _, _, err := n.Federation().Join(ctx, u, conf.ID); err != nil {
			return nil, fmt.Errorf("%s joins conference %d: %w", id, k+1, err)
		}
		ref := federation.UserRef(u.ID, n.DID())
		// On a member node the join takes effect once the host's record
		// comes back; the SFU asks this node.
		err = waitFor(ctx, 10*time.Millisecond, benchStepLimit, ref+" to be a participant at "+n.Name(), func() (bool, error) {
			return n.Federation().MayParticipate(ctx, conf.ID, ref) == nil, nil
		})
		if err != nil {
			return nil, err
		}
		publishes := o.meeting > 0 || j < o.publishers
		out = append(out, mediabench.Participant{
			Name:       id + "@" + n.Name(),
			Conference: conf.ID,
			URL:        strings.Replace(n.PublicURL(), "https://", "wss://", 1) + "/api/v1/conferences/" + conf.ID + "/media",
			Token:      tok,
			Audio:      publishes,
			Video:      publishes && (o.meeting == 0 || o.video < 0 || j < o.video),
			Simulcast:  o.simulcast,
			Subscribe:  o.meeting > 0 || j >= o.publishers,
		})
	}
	return out, nil
}

// freeUDPPort finds a UDP port nothing listens on, for a node to take.
func freeUDPPort() (int, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		return 0, fmt.Errorf("find a free UDP port: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// serverSample is what this process reads at each end of the window.
type serverSample struct {
	cpu            time.Duration
	userCPU        time.Duration
	mallocs        uint64
	forwarded      []int64
	forwardedBytes []int64
	trunkBytes     []int64
	rcvbufErrors   int64
}

func sampleServer(nodes []*node.Node) (serverSample, error) {
	var s serverSample
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, fmt.Errorf("getrusage: %w", err)
	}
	s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	s.userCPU = time.Duration(ru.Utime.Nano())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mallocs = ms.Mallocs
	for _, n := range nodes {
		f, err := forwardedCounts(n)
		if err != nil {
			return s, err
		}
		s.forwarded = append(s.forwarded, f.packets)
		s.forwardedBytes = append(s.forwardedBytes, f.bytes)
		s.trunkBytes = append(s.trunkBytes, int64(n.SFU().TrunkStats().BytesSent))
	}
	var err error
	s.rcvbufErrors, err = udpRcvbufErrors()
	return s, err
}

// forwarded is what an SFU's counters say it forwarded, over media kinds.
type forwarded struct{ packets, bytes int64 }

// forwardedCounts sums the SFU's forwarded packet and payload byte
// counters over kinds.
func forwardedCounts(n *node.Node) (forwarded, error) {
	var f forwarded
	families, err := n.Registry().Gather()
	if err != nil {
		return f, fmt.Errorf("%s metrics: %w", n.Name(), err)
	}
	for _, fam := range families {
		var sum *int64
		switch fam.GetName() {
		case "entente_media_forwarded_packets_total":
			sum = &f.packets
		case "entente_media_forwarded_bytes_total":
			sum = &f.bytes
		default:
			continue
		}
		for _, m := range fam.GetMetric() {
			*sum += int64(m.GetCounter().GetValue())
		}
	}
	return f, nil
}

// udpRcvbufErrors reads the kernel's count of UDP datagrams dropped for a
// full receive buffer, for the whole network namespace.
func udpRcvbufErrors() (int64, error) {
	data, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, fmt.Errorf("UDP counters: %w", err)
	}
	return parseRcvbufErrors(data)
}

// parseRcvbufErrors finds RcvbufErrors in the two "Udp:" lines of
// /proc/net/snmp: names, then values.
func parseRcvbufErrors(data []byte) (int64, error) {
	var names []string
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, name := range names {
			if name == "RcvbufErrors" && i < len(fields) {
				var v int64
				if _, err := fmt.Sscan(fields[i], &v); err != nil {
					return 0, fmt.Errorf("UDP counters: RcvbufErrors %q: %w", fields[i], err)
				}
				return v, nil
			}
		}
		break
	}
	return 0, errors.New("UDP counters: no RcvbufErrors in /proc/net/snmp")
}

// runMediaClients runs plan in a child process and samples this process at
// the window's ends, which the child announces on its standard output.
func (a *app) runMediaClients(ctx context.Context, nodes []*node.Node, plan mediabench.Plan, cpuProfile string) (before, after serverSample, rep mediabench.Report, err error) {
	self, err := os.Executable()
	if err != nil {
		return before, after, rep, fmt.Errorf("clients process: %w", err)
	}
	planJSON, err := json.Marshal(plan)
	if err != nil {
		return before, after, rep, err
	}
	ctx, cancel := context.WithTimeout(ctx, plan.Duration+mediaSetupLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "bench", "media", "--clients-only")
	cmd.Env = a.environ
	// Tokens go over a pipe, never the command line.
	cmd.Stdin = bytes.NewReader(planJSON)
	cmd.Stderr = a.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return before, after, rep, err
	}
	if err := cmd.Start(); err != nil {
		return before, after, rep, fmt.Errorf("clients process: %w", err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sawStart, sawEnd, sawReport bool
	stopProfile := func() error { return nil }
	defer func() { _ = stopProfile() }()
	for sc.Scan() && err == nil {
		switch line := sc.Text(); {
		case line == lineWindowStart:
			before, err = sampleServer(nodes)
			sawStart = true
			if err == nil && cpuProfile != "" {
				var stop func() error
				if stop, err = startProfile(cpuProfile); err == nil {
					stopProfile = stop
				}
			}
		case line == lineWindowEnd:
			after, err = sampleServer(nodes)
			sawEnd = true
			if perr := stopProfile(); err == nil {
				err = perr
			}
		case strings.HasPrefix(line, "{"):
			err = json.Unmarshal([]byte(line), &rep)
			sawReport = true
		}
	}
	_, _ = io.Copy(io.Discard, out)
	if waitErr := cmd.Wait(); waitErr != nil && err == nil {
		err = fmt.Errorf("clients process: %w", waitErr)
	}
	if err == nil && !(sawStart && sawEnd && sawReport) {
		err = errors.New("clients process ended without a complete report")
	}
	return before, after, rep, err
}

// startProfile profiles this process, where only the nodes run; the
// function it returns stops the profile and writes the file, once.
func startProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	var once sync.Once
	var closeErr error
	return func() error {
		once.Do(func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				closeErr = fmt.Errorf("cpu profile: %w", err)
			}
		})
		return closeErr
	}, nil
}

// benchMediaClients is the child's side: it reads a plan, runs it, and
// writes a line at each end of the window, then the report as one line.
func (a *app) benchMediaClients(ctx context.Context, in io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(in, maxPlanBytes+1))
	if err != nil {
		return fmt.Errorf("read plan: %w", err)
	}
	if len(data) > maxPlanBytes {
		return fmt.Errorf("plan larger than %d bytes", maxPlanBytes)
	}
	var plan mediabench.Plan
	if err := json.Unmarshal(data, &plan); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	rep, err := mediabench.Run(ctx, plan, func(p mediabench.Phase) {
		switch p {
		case mediabench.WindowStart:
			fmt.Fprintln(a.stdout, lineWindowStart)
		case mediabench.WindowEnd:
			fmt.Fprintln(a.stdout, lineWindowEnd)
		}
	})
	if err != nil {
		return err
	}
	line, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", line)
	return err
}
