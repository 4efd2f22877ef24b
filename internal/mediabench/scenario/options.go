// Package scenario runs the scenarios of `entente bench media`: it starts
// complete local nodes with internal/localfed, prepares conferences and
// participants, runs mediabench's synthetic clients in a child process (so
// that this process's CPU time is only the nodes') and reports the nodes'
// cost per forwarded packet with what the clients measured.
//
// Unlike mediabench, which sees only what a client can see, scenario reads
// the nodes' counters; it prints nothing: the command encodes its Report.
package scenario

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/entente-org/entente/internal/mediabench"
)

// Options are the flags of `entente bench media`; the messages of Validate
// name them.
type Options struct {
	Nodes, Conferences      int
	Publishers, Subscribers int
	Meeting                 int
	Duration                time.Duration
	Simulcast               bool
	CPUProfile              string
	// Video is how many of a meeting's participants also publish a camera;
	// -1 means all of them.
	Video int
	// UDP is how the nodes use UDP: one shared port each, as in
	// production (media.udp_port), or a port per connection.
	UDP string
	// Clients is the kind of client of the participants: ClientsNative,
	// ClientsLiveKit, or ClientsBoth for the same scenario measured with
	// each, one after the other.
	Clients string
	// Replicas, when not 0, runs one node as that many replica processes
	// over PostgreSQL (DatabaseURL) and NATS (NATSURL): replicas.go.
	Replicas    int
	DatabaseURL string
	NATSURL     string
}

// Values of --clients.
const (
	ClientsNative  = "native"
	ClientsLiveKit = "livekit"
	ClientsBoth    = "both"
)

// kinds are the kinds of client measured, in order.
func (o Options) kinds() []string {
	switch o.Clients {
	case ClientsLiveKit:
		return []string{mediabench.KindLiveKit}
	case ClientsBoth:
		return []string{mediabench.KindNative, mediabench.KindLiveKit}
	}
	return []string{mediabench.KindNative}
}

// Env is what a run needs from the process that starts it.
type Env struct {
	// Stderr receives the nodes' warnings and the clients process's
	// standard error.
	Stderr io.Writer
	// Version is the build the nodes report.
	Version string
	// Environ is the clients process's environment.
	Environ []string
	// ClientsArgs re-executes this binary as the clients process, which
	// calls RunClients with the plan on its standard input.
	ClientsArgs []string
}

func (e Env) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(e.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Bounds of `bench media`, so that every scenario ends.
const (
	maxMediaNodes       = 3
	maxMediaConferences = 50
	maxMediaDuration    = 5 * time.Minute
	// mediaSetupLimit bounds everything around the measurement: starting
	// nodes, federating, connecting the clients.
	mediaSetupLimit = 3 * time.Minute
	// benchStepLimit is the longest one invitation, acceptance or join may
	// take before the benchmark gives up.
	benchStepLimit = 30 * time.Second
	// maxPlanBytes bounds the plan a --clients-only process reads.
	maxPlanBytes = 8 << 20
	// Values of --udp.
	UDPShared        = "shared"
	UDPPerConnection = "per-connection"
	// Lines the clients process writes; see RunClients.
	lineWindowStart = "window-start"
	lineWindowEnd   = "window-end"
	// lineFailoverReady asks for the replica's kill (--replicas).
	lineFailoverReady = "failover-ready"
)

// Validate refuses scenarios that would not end or mean nothing, naming the
// flag.
func (o Options) Validate() error {
	if o.Nodes < 1 || o.Nodes > maxMediaNodes {
		return fmt.Errorf("--nodes must be between 1 and %d, got %d", maxMediaNodes, o.Nodes)
	}
	if o.Conferences < 1 || o.Conferences > maxMediaConferences {
		return fmt.Errorf("--conferences must be between 1 and %d, got %d", maxMediaConferences, o.Conferences)
	}
	if o.Duration <= 0 || o.Duration > maxMediaDuration {
		return fmt.Errorf("--duration must be positive and at most %s, got %s", maxMediaDuration, o.Duration)
	}
	if o.Meeting < 0 || o.Publishers < 0 || o.Subscribers < 0 {
		return fmt.Errorf("--meeting, --publishers and --subscribers cannot be negative")
	}
	if o.Meeting == 1 {
		return fmt.Errorf("--meeting needs at least 2 participants, got 1")
	}
	switch o.Clients {
	case ClientsNative, ClientsLiveKit, ClientsBoth:
	default:
		return fmt.Errorf("--clients must be %s, %s or %s, got %q", ClientsNative, ClientsLiveKit, ClientsBoth, o.Clients)
	}
	if o.UDP != UDPShared && o.UDP != UDPPerConnection {
		return fmt.Errorf("--udp must be %s or %s, got %q", UDPShared, UDPPerConnection, o.UDP)
	}
	if o.Video >= 0 && (o.Meeting == 0 || o.Video > o.Meeting) {
		return fmt.Errorf("--video needs --meeting and at most its %d participants, got %d", o.Meeting, o.Video)
	}
	if o.Video < -1 {
		return fmt.Errorf("--video cannot be negative, got %d", o.Video)
	}
	if o.Replicas != 0 {
		if err := o.validateReplicas(); err != nil {
			return err
		}
	} else if o.DatabaseURL != "" || o.NATSURL != "" {
		return fmt.Errorf("--database-url and --nats-url go with --replicas")
	}
	if o.Meeting == 0 && (o.Publishers < 1 || o.Subscribers < 1) {
		return fmt.Errorf("--publishers and --subscribers must each be at least 1 (or use --meeting)")
	}
	if total := o.Conferences * o.PerConference(); total > mediabench.MaxParticipants {
		return fmt.Errorf("%d participants in all; at most %d", total, mediabench.MaxParticipants)
	}
	return nil
}

func (o Options) PerConference() int {
	if o.Meeting > 0 {
		return o.Meeting
	}
	return o.Publishers + o.Subscribers
}

// Sizes added to a forwarded payload on the wire, for the UDP floor.
const (
	RTPHeaderBytes = 12
	SRTPTagBytes   = 16
)

// SinksPerTrack is how many participants of a conference receive each
// track: all the others in a meeting, the subscribers otherwise.
func (o Options) SinksPerTrack() int {
	if o.Meeting > 0 {
		return o.Meeting - 1
	}
	return max(o.Subscribers, 1)
}
