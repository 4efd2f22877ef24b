package main

import (
	"encoding/json"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/entente-org/entente/internal/fedbench"
)

func (a *app) benchCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure this build's performance on this machine",
		Args:  noArgs,
		RunE:  groupRun,
	}
	c.AddCommand(a.benchFederationCommand(), a.benchMediaCommand())
	return c
}

func (a *app) benchFederationCommand() *cobra.Command {
	var o fedbench.Options
	c := &cobra.Command{
		Use:   "federation",
		Short: "Measure envelope signing, invitations and outbox delivery between two local nodes",
		Long: `Start two complete nodes on 127.0.0.1 in a temporary directory, with a local
CA, make them trust each other, and measure:
  - envelope sign+verify throughput on one core, for --duration;
  - --invites sequential invitations, each from the Invite call on the first
    node until the first node sees the second one's acceptance;
  - outbox throughput: --messages lock/unlock events of a conference the
    second node takes part in, from the first enqueue until the second node's
    replica holds the last;
  - with --flood untrusted or trusted, the invitations once more while a
    third local node, untrusted or trusted by both, sends both signed
    requests of --flood-body bytes from --flood-workers connections (at most
    --flood-requests, and never beyond the invitations).
With --partition D, measure instead how a federation recovers from a network
partition: both nodes behind loopback proxies, the path between them cut
silently (no FIN, no RST) for D while each side writes chat (one line a
second) and the host changes the conference's log (every 5 s), then healed;
it reports the time from the heal until the guest's replica has the host's
head and until the last chat line arrived, and how many lines arrived, once
each and in order.
Prints one JSON object. Stores are SQLite unless --database-url names a
PostgreSQL server, where each node gets a schema of its own, dropped at the end.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			env := fedbench.Env{Stderr: a.stderr, Version: version}
			var res any
			var err error
			if o.Partition > 0 {
				res, err = fedbench.RunPartition(ctx, o, env)
			} else {
				res, err = fedbench.Run(ctx, o, env)
			}
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		},
	}
	c.Flags().DurationVar(&o.Duration, "duration", 3*time.Second, "how long to measure envelope sign+verify throughput")
	c.Flags().IntVar(&o.Invites, "invites", 50, "number of sequential invite-to-accepted cycles")
	c.Flags().IntVar(&o.Messages, "messages", 500, "number of events delivered through the outbox")
	c.Flags().StringVar(&o.Flood, "flood", fedbench.FloodNone, "measure the invitations again during a flood from an \"untrusted\" or a \"trusted\" node")
	c.Flags().IntVar(&o.FloodWorkers, "flood-workers", 8, "concurrent connections of the flood")
	c.Flags().Int64Var(&o.FloodRequests, "flood-requests", 1_000_000, "most requests the flood sends")
	c.Flags().IntVar(&o.FloodBody, "flood-body", fedbench.MaxFloodBody, "bytes of each flood request's body")
	c.Flags().DurationVar(&o.Partition, "partition", 0, "measure recovery from a network partition of this length instead (e.g. 60s)")
	c.Flags().StringVar(&o.DatabaseURL, "database-url", "", "PostgreSQL URL for the nodes' stores (default: SQLite in the temporary directory)")
	return c
}
