package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/node"
)

// configError marks an invalid configuration (exit code 2).
type configError struct{ err error }

func (e configError) Error() string { return "invalid configuration: " + e.err.Error() }
func (e configError) Unwrap() error { return e.err }

func isConfigError(err error) bool {
	var ce configError
	return errors.As(err, &ce)
}

// loadConfig reads --config (or ENTENTE_CONFIG) and the environment.
func (a *app) loadConfig(path string) (config.Config, error) {
	if path == "" {
		for _, kv := range a.environ {
			if v, ok := strings.CutPrefix(kv, "ENTENTE_CONFIG="); ok {
				path = v
			}
		}
	}
	cfg, err := config.Load(path, a.environ)
	if err != nil {
		return config.Config{}, configError{err}
	}
	return cfg, nil
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // validated by config
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func (a *app) serveCommand() *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run this institution's node",
		Long: `Run the node described by a YAML configuration file. Every setting can be
overridden by an environment variable (see "entente config reference").
The node stops gracefully on SIGTERM or SIGINT.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			start := time.Now()
			cfg, err := a.loadConfig(cfgPath)
			if err != nil {
				return err
			}
			log := newLogger(a.stderr, cfg.Log.Format, cfg.Log.Level)
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			n, err := node.New(ctx, cfg, node.Options{Logger: log, Version: version})
			if err != nil {
				return err
			}
			if err := n.Start(); err != nil {
				n.Shutdown(context.Background())
				return err
			}
			log.Info("node ready", "did", n.DID(), "startup_ms", time.Since(start).Milliseconds())
			<-ctx.Done()
			log.Info("shutting down", "timeout", cfg.HTTP.ShutdownTimeout.String())
			if err := n.Shutdown(context.Background()); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&cfgPath, "config", "c", "", "YAML configuration file (default $ENTENTE_CONFIG; none: environment only)")
	return c
}
