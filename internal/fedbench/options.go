// Package fedbench measures the federation between complete local nodes
// (`entente bench federation`): envelope signing, invitations and outbox
// delivery between two nodes, the same invitations during a flood from a
// third node, and the recovery from a network partition.
//
// It starts its nodes with internal/localfed and reads them only through
// their public methods and stores. It prints nothing: the command encodes
// the reports it returns.
package fedbench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"
)

// Options are the flags of `entente bench federation`; the messages of
// Validate name them.
type Options struct {
	Duration    time.Duration
	Invites     int
	Messages    int
	DatabaseURL string
	// Flood is FloodNone, FloodUntrusted or FloodTrusted (flood.go).
	Flood         string
	FloodWorkers  int
	FloodRequests int64
	FloodBody     int
	// Partition, when set, selects the partition measurement instead
	// (partition.go).
	Partition time.Duration
}

// Env is what a run needs from the process that starts it.
type Env struct {
	// Stderr receives the nodes' logs (warnings and errors only).
	Stderr io.Writer
	// Version is the build the nodes report.
	Version string
}

func (e Env) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.Stderr, &slog.HandlerOptions{Level: level}))
}

// Bounds of the flags, so that every measurement loop ends.
const (
	maxBenchDuration = 10 * time.Minute
	maxBenchInvites  = 10_000
	maxBenchMessages = 100_000
	// maxEnvelopeOps bounds the sign+verify loop in count as well as time.
	maxEnvelopeOps = 100_000_000
	// benchPoll is how often a measurement looks for the effect it waits for;
	// it bounds the error of each latency.
	benchPoll = time.Millisecond
	// benchStepLimit is the longest one invitation or acceptance may take
	// before the benchmark gives up.
	benchStepLimit = 30 * time.Second
)

// errDatabaseURL names the flag and neither the URL nor url.Error: they may
// hold a password.
var errDatabaseURL = errors.New("--database-url must be a postgres:// URL")

// Validate refuses options that would make a run unbounded or meaningless,
// naming the flag.
func (o Options) Validate() error {
	if o.Duration <= 0 || o.Duration > maxBenchDuration {
		return fmt.Errorf("--duration must be positive and at most %s, got %s", maxBenchDuration, o.Duration)
	}
	if o.Invites < 1 || o.Invites > maxBenchInvites {
		return fmt.Errorf("--invites must be between 1 and %d, got %d", maxBenchInvites, o.Invites)
	}
	if o.Messages < 1 || o.Messages > maxBenchMessages {
		return fmt.Errorf("--messages must be between 1 and %d, got %d", maxBenchMessages, o.Messages)
	}
	switch o.Flood {
	case FloodNone, FloodUntrusted, FloodTrusted:
	default:
		return fmt.Errorf("--flood must be %s, %s or %s, got %q", FloodNone, FloodUntrusted, FloodTrusted, o.Flood)
	}
	if o.FloodWorkers < 1 || o.FloodWorkers > maxFloodWorkers {
		return fmt.Errorf("--flood-workers must be between 1 and %d, got %d", maxFloodWorkers, o.FloodWorkers)
	}
	if o.FloodRequests < 1 || o.FloodRequests > maxFloodRequests {
		return fmt.Errorf("--flood-requests must be between 1 and %d, got %d", maxFloodRequests, o.FloodRequests)
	}
	if o.FloodBody < minFloodBody || o.FloodBody > MaxFloodBody {
		return fmt.Errorf("--flood-body must be between %d and %d bytes, got %d", minFloodBody, MaxFloodBody, o.FloodBody)
	}
	if o.Partition < 0 || o.Partition > maxBenchDuration {
		return fmt.Errorf("--partition must be at most %s, got %s", maxBenchDuration, o.Partition)
	}
	if o.DatabaseURL != "" {
		if _, err := postgresURL(o.DatabaseURL); err != nil {
			return err
		}
	}
	return nil
}

// postgresURL parses a --database-url.
func postgresURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, errDatabaseURL
	}
	return u, nil
}
