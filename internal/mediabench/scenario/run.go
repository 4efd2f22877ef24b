package scenario

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/localfed"
	"github.com/entente-org/entente/internal/mediabench"
	"github.com/entente-org/entente/internal/node"
	"github.com/entente-org/entente/livekit"
)

// Run starts the nodes, then for each kind of client of o (native, LiveKit,
// or both one after the other on the same nodes, each in conferences of its
// own) creates the conferences, runs the clients and reports what the nodes
// spent and what the clients measured.
func Run(ctx context.Context, o Options, env Env) ([]Report, error) {
	dir, err := os.MkdirTemp("", "entente-bench-media-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	log := env.logger()
	ca, caFile, err := localfed.NewCA(dir, "bench", 24*time.Hour)
	if err != nil {
		return nil, err
	}

	var nodes []*node.Node
	defer func() { localfed.ShutdownAll(nodes) }()
	for i := range o.Nodes {
		name := fmt.Sprintf("Bench Node %d", i+1)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bench node %s: %w", name, err)
		}
		var udpPort int
		if o.UDP == UDPShared {
			if udpPort, err = freeUDPPort(); err != nil {
				l.Close()
				return nil, fmt.Errorf("bench node %s: %w", name, err)
			}
		}
		n, err := localfed.Start(ctx, l, localfed.Node{
			Name: name, DataDir: filepath.Join(dir, fmt.Sprintf("node-%d", i+1)), CA: ca, CAFile: caFile,
			Log: log.With("institution", name), UDPPort: udpPort, Version: env.Version,
		})
		if err != nil {
			return nil, fmt.Errorf("bench node %s: %w", name, err)
		}
		nodes = append(nodes, n)
	}
	if len(nodes) > 1 {
		if err := localfed.Trust(ctx, nodes); err != nil {
			return nil, err
		}
		if err := localfed.Federate(ctx, nodes); err != nil {
			return nil, err
		}
	}
	// The LiveKit SDK dials with the system's roots; the clients process
	// trusts the nodes' CA through them.
	if env.Environ == nil {
		env.Environ = os.Environ()
	}
	env.Environ = append(slices.Clip(env.Environ), "SSL_CERT_FILE="+caFile)
	var out []Report
	for _, kind := range o.kinds() {
		plan := mediabench.Plan{CAPEM: string(ca.PEM), Duration: o.Duration}
		for k := range o.Conferences {
			ps, err := conference(ctx, nodes, k, o, kind)
			if err != nil {
				return nil, err
			}
			plan.Participants = append(plan.Participants, ps...)
		}
		res, err := measure(ctx, o, env, nodes, plan, kind)
		if err != nil {
			return nil, fmt.Errorf("%s clients: %w", kind, err)
		}
		out = append(out, res)
	}
	return out, nil
}

// measure runs plan's clients and reports what the nodes spent during the
// window and what the clients measured.
func measure(ctx context.Context, o Options, env Env, nodes []*node.Node, plan mediabench.Plan, kind string) (Report, error) {
	res := Report{
		Scenario: Scenario{Nodes: o.Nodes, Conferences: o.Conferences, Meeting: o.Meeting,
			Participants: o.Conferences * o.PerConference(), DurationS: o.Duration.Seconds(), Simulcast: o.Simulcast, UDP: o.UDP,
			ClientKind: kind},
		ForwardedPackets: map[string]int64{},
		Clients:          "subprocess",
		Cores:            runtime.NumCPU(),
		Go:               runtime.Version(),
	}
	if o.Meeting == 0 {
		res.Scenario.Publishers, res.Scenario.Subscribers = o.Publishers, o.Subscribers
	} else {
		res.Scenario.VideoPublishers = o.PerConference()
		if o.Video >= 0 {
			res.Scenario.VideoPublishers = o.Video
		}
	}
	profile := o.CPUProfile
	if profile != "" && len(o.kinds()) > 1 {
		profile = strings.TrimSuffix(profile, filepath.Ext(profile)) + "-" + kind + filepath.Ext(profile)
	}
	before, after, rep, err := runClients(ctx, env, nodes, plan, profile)
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
		size := int(forwardedBytes/forwarded) + RTPHeaderBytes + SRTPTagBytes
		floor, err := mediabench.MeasureFloor(o.SinksPerTrack(), size)
		if err != nil {
			return res, err
		}
		res.UDPFloor = &floor
	}
	return res, nil
}

// conference creates conference k on the first node, has every
// other node invited and accept, and makes each participant a local user of
// its node who joined the conference there.
func conference(ctx context.Context, nodes []*node.Node, k int, o Options, kind string) ([]mediabench.Participant, error) {
	host := nodes[0]
	prefix := ""
	if kind == mediabench.KindLiveKit {
		prefix = "lk-"
	}
	organiser, err := localfed.AddUser(ctx, host, fmt.Sprintf("%sc%d-organiser", prefix, k+1), "Organiser")
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
		delegate, err := localfed.AddUser(ctx, n, fmt.Sprintf("%sc%d-delegate", prefix, k+1), "Delegate")
		if err != nil {
			return nil, err
		}
		err = localfed.WaitFor(ctx, 10*time.Millisecond, benchStepLimit, n.Name()+" to receive the invitation to "+conf.ID, func() (bool, error) {
			return localfed.PeerState(ctx, n, conf.ID, n.DID(), "invited")
		})
		if err != nil {
			return nil, err
		}
		if _, _, err := n.Federation().Answer(ctx, delegate, conf.ID, true); err != nil {
			return nil, fmt.Errorf("conference %d: %s accepts: %w", k+1, n.Name(), err)
		}
		err = localfed.WaitFor(ctx, 10*time.Millisecond, benchStepLimit, "the acceptance of "+n.Name()+" at the host", func() (bool, error) {
			return localfed.PeerState(ctx, host, conf.ID, n.DID(), "accepted")
		})
		if err != nil {
			return nil, err
		}
	}

	var out []mediabench.Participant
	for j := range o.PerConference() {
		n := nodes[j%len(nodes)]
		id := fmt.Sprintf("%sc%d-p%d", prefix, k+1, j+1)
		u, err := localfed.AddUser(ctx, n, id, fmt.Sprintf("Participant %d.%d", k+1, j+1))
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
		err = localfed.WaitFor(ctx, 10*time.Millisecond, benchStepLimit, ref+" to be a participant at "+n.Name(), func() (bool, error) {
			return n.Federation().MayParticipate(ctx, conf.ID, ref) == nil, nil
		})
		if err != nil {
			return nil, err
		}
		publishes := o.Meeting > 0 || j < o.Publishers
		url := strings.Replace(n.PublicURL(), "https://", "wss://", 1) + "/api/v1/conferences/" + conf.ID + "/media"
		if kind == mediabench.KindLiveKit {
			if url, tok, err = liveKitAccess(n, conf.ID, ref, u.DisplayName); err != nil {
				return nil, fmt.Errorf("%s: %w", id, err)
			}
		}
		out = append(out, mediabench.Participant{
			Name:       id + "@" + n.Name(),
			Kind:       kind,
			Conference: conf.ID,
			URL:        url,
			Token:      tok,
			Audio:      publishes,
			Video:      publishes && (o.Meeting == 0 || o.Video < 0 || j < o.Video),
			Simulcast:  o.Simulcast,
			Subscribe:  o.Meeting > 0 || j >= o.Publishers,
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

// liveKitAccess is the LiveKit URL of node n and an access token for user
// ref in conference, minted with the node's credentials as a backend would.
func liveKitAccess(n *node.Node, conference, ref, name string) (string, string, error) {
	key, secret, ok := n.LiveKitCredentials()
	if !ok {
		return "", "", fmt.Errorf("%s serves no LiveKit clients", n.Name())
	}
	tok, err := livekit.Mint(key, secret, conference, ref, name, nil, 24*time.Hour)
	if err != nil {
		return "", "", err
	}
	return n.LiveKitURL(), tok, nil
}
