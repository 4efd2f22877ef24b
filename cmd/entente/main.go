// Command entente runs and administers an Entente node: one binary per
// institution. This package is wiring and command-line handling only; every
// behaviour lives in the package that owns it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Environ()))
}

// app carries what every subcommand needs, so that tests can run commands
// in-process with their own streams and environment.
type app struct {
	stdout, stderr io.Writer
	environ        []string
}

// usageError marks a mistake in how the command was called (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run executes one command line and returns the process exit code: 0 on
// success, 2 for a usage or configuration error, 1 for any other failure.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) (code int) {
	defer func() {
		// A bug must still end as one line, never a stack trace.
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "entente: internal error: %v\n", r)
			code = 1
		}
	}()
	a := &app{stdout: stdout, stderr: stderr, environ: environ}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "entente: %s\n", oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || isConfigError(err) {
		return 2
	}
	return 1
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "entente",
		Short: "Federated video conferencing for public administrations",
		Long: `Entente runs one institution's node: its identity, its store, its SFU and its
federation with the nodes of the institutions it trusts.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE:          groupRun,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.AddCommand(
		a.serveCommand(),
		a.demoCommand(),
		a.benchCommand(),
		a.keysCommand(),
		a.peersCommand(),
		a.usersCommand(),
		a.tokenCommand(),
		a.confCommand(),
		a.configCommand(),
		a.bridgeCommand(),
		a.healthcheckCommand(),
		a.versionCommand(),
	)
	return root
}

// groupRun is the action of a command that only groups subcommands.
func groupRun(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %q", args[0], c.CommandPath())
	}
	return c.Help()
}

func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 && !c.HasSubCommands() {
		return usagef("%s takes no arguments, got %q", c.CommandPath(), args[0])
	}
	return nil
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s needs %s", c.CommandPath(), names)
		}
		return nil
	}
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintf(a.stdout, "entente %s\n", versionString())
			return nil
		},
	}
}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + info.GoVersion
	}
	return v
}
