package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/entente-org/entente/bridge"
)

func (a *app) bridgeCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "bridge",
		Short: "Set up the Matrix appservice",
		Args:  noArgs,
		RunE:  groupRun,
	}
	var (
		path, output, url string
		force             bool
	)
	gen := &cobra.Command{
		Use:   "generate-registration",
		Short: "Write the appservice registration YAML for the homeserver",
		Long: `Writes the registration the Matrix homeserver loads to let Entente act as an
appservice: random as_token and hs_token, the bot, and an exclusive namespace
for the ghost users (bridge.ghost_prefix). The same file is bridge.registration
for the node. It is written with mode 0600 and never replaced without --force.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(path)
			if err != nil {
				return err
			}
			b := cfg.Bridge
			if output == "" {
				output = b.Registration
			}
			if output == "" {
				return usagef("no output file: set bridge.registration or pass --output")
			}
			if b.HomeserverDomain == "" {
				return usagef("bridge.homeserver_domain is not set")
			}
			if url == "" {
				url = "http://" + b.Listen
			}
			reg, err := bridge.NewRegistration(bridge.RegistrationOptions{
				URL:              url,
				HomeserverDomain: b.HomeserverDomain,
				BotLocalpart:     b.BotLocalpart,
				GhostPrefix:      b.GhostPrefix,
			})
			if err != nil {
				return err
			}
			if err := bridge.WriteRegistration(output, reg, force); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "wrote %s; add it to the homeserver's appservice config files and restart it\n", output)
			return nil
		},
	}
	gen.Flags().StringVarP(&path, "config", "c", "", "YAML configuration file (default $ENTENTE_CONFIG)")
	gen.Flags().StringVarP(&output, "output", "o", "", "registration file to write (default bridge.registration)")
	gen.Flags().StringVar(&url, "url", "", "URL at which the homeserver reaches the appservice (default http://<bridge.listen>)")
	gen.Flags().BoolVar(&force, "force", false, "replace an existing registration (the homeserver must load the new one)")
	c.AddCommand(gen)
	return c
}
