package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/entente-org/entente/internal/config"
)

func (a *app) configCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Show the configuration reference, an example file, or check a file",
		Args:  noArgs,
		RunE:  groupRun,
	}
	c.AddCommand(&cobra.Command{
		Use:   "reference",
		Short: "Print the configuration reference (Markdown)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprint(a.stdout, config.Reference())
			return nil
		},
	}, &cobra.Command{
		Use:   "example",
		Short: "Print an example configuration file with every default and fresh LiveKit API credentials",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			c := config.Default()
			c.LiveKit = config.NewLiveKitCredentials()
			fmt.Fprint(a.stdout, config.ExampleOf(c))
			return nil
		},
	})
	var path string
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate a configuration file and the environment",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := a.loadConfig(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "configuration valid: %s (%s)\n", cfg.Node.Name, cfg.DID())
			return nil
		},
	}
	check.Flags().StringVarP(&path, "config", "c", "", "YAML configuration file (default $ENTENTE_CONFIG)")
	c.AddCommand(check)
	return c
}
