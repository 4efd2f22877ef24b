package main

import (
	"context"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/node"
)

func (a *app) keysCommand() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "keys",
		Short: "Generate, rotate and list the node's signing keys",
		Long: `The node signs federation messages with a P-256 key. Rotation makes a new
current key and keeps the previous one verify-only for keys.rotation_overlap,
so that peers still accept messages signed just before the rotation.
A running node publishes the new key after it restarts.`,
		Args: noArgs,
		RunE: groupRun,
	}
	c.PersistentFlags().StringVarP(&path, "config", "c", "", "YAML configuration file (default $ENTENTE_CONFIG)")

	c.AddCommand(&cobra.Command{
		Use:   "generate",
		Short: "Make the node's first key (refuses if keys exist)",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return a.withKeyStorage(c.Context(), path, func(cfg config.Config, ks identity.KeyStorage) error {
				kr, err := identity.GenerateKeyring(c.Context(), ks, time.Now())
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "generated key %s for %s\n", kr.CurrentID(), cfg.DID())
				return nil
			})
		},
	})

	var overlap time.Duration
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new current key; the old one stays verify-only for the overlap",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return a.withKeyStorage(c.Context(), path, func(cfg config.Config, ks identity.KeyStorage) error {
				if overlap == 0 {
					overlap = cfg.Keys.RotationOverlap
				}
				if overlap < 0 {
					return usagef("--overlap must be positive")
				}
				now := time.Now()
				kr, err := identity.LoadKeyring(c.Context(), ks, now)
				if err != nil {
					return err
				}
				old := kr.CurrentID()
				k, err := kr.Rotate(c.Context(), overlap, now)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "new current key %s; %s stays verify-only until %s\n",
					k.ID, old, now.Add(overlap).UTC().Format(time.RFC3339))
				return nil
			})
		},
	}
	rotate.Flags().DurationVar(&overlap, "overlap", 0, "how long the previous key stays valid for verification (default keys.rotation_overlap)")
	c.AddCommand(rotate)

	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the node's keys",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return a.withKeyStorage(c.Context(), path, func(cfg config.Config, ks identity.KeyStorage) error {
				now := time.Now()
				kr, err := identity.LoadKeyring(c.Context(), ks, now)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATUS\tCREATED\tRETIRES\tPUBLIC KEY")
				for _, k := range kr.Keys(now) {
					status, retires := "current", "-"
					if !k.Current() {
						status, retires = "verify-only", k.RetireAt.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, status, k.Created.UTC().Format(time.RFC3339), retires, k.PublicMultibase)
				}
				return tw.Flush()
			})
		},
	})
	return c
}

// withKeyStorage opens what the config says holds the keys, for the duration
// of fn.
func (a *app) withKeyStorage(ctx context.Context, path string, fn func(config.Config, identity.KeyStorage) error) error {
	cfg, err := a.loadConfig(path)
	if err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	s, err := node.OpenStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(cfg, node.KeyStorage(cfg, s))
}
