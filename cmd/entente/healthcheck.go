package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// healthcheckCommand probes the local node's /readyz. It exists because the
// container image has no shell or curl for a compose healthcheck.
func (a *app) healthcheckCommand() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if the node on this machine is ready (for container healthchecks)",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(path)
			if err != nil {
				return err
			}
			_, port, _ := net.SplitHostPort(cfg.HTTP.Listen)
			client := &http.Client{
				Timeout: 3 * time.Second,
				// The probe talks to this very machine over loopback; the
				// certificate may be self-signed or name the public host.
				Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
			}
			url := "https://" + net.JoinHostPort("127.0.0.1", port) + "/readyz"
			resp, err := client.Get(url)
			if err != nil {
				return fmt.Errorf("node not reachable at %s: %w", url, err)
			}
			// The answer names why the node is not ready (a store that
			// cannot write: its cause); the container's health log shows it.
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("node not ready: %s answered %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
			}
			fmt.Fprintln(a.stdout, "ready")
			return nil
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "", "YAML configuration file (default $ENTENTE_CONFIG)")
	return c
}
