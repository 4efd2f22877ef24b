package scenario

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"sync"

	"github.com/entente-org/entente/internal/mediabench"
	"github.com/entente-org/entente/internal/node"
)

// runClients runs plan in a child process and samples this process at
// the window's ends, which the child announces on its standard output.
func runClients(ctx context.Context, env Env, nodes []*node.Node, plan mediabench.Plan, cpuProfile string) (before, after serverSample, rep mediabench.Report, err error) {
	return runClientsSampled(ctx, env, plan, cpuProfile, func() (serverSample, error) { return sampleServer(nodes) }, nil)
}

// runClientsSampled is runClients with the servers sampled by sample;
// failover, if not nil, runs when the clients are ready for a replica's
// death (Plan.Failover).
func runClientsSampled(ctx context.Context, env Env, plan mediabench.Plan, cpuProfile string, sample func() (serverSample, error), failover func()) (before, after serverSample, rep mediabench.Report, err error) {
	self, err := os.Executable()
	if err != nil {
		return before, after, rep, fmt.Errorf("clients process: %w", err)
	}
	planJSON, err := json.Marshal(plan)
	if err != nil {
		return before, after, rep, err
	}
	ctx, cancel := context.WithTimeout(ctx, plan.Duration+mediaSetupLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, env.ClientsArgs...)
	cmd.Env = env.Environ
	// Tokens go over a pipe, never the command line.
	cmd.Stdin = bytes.NewReader(planJSON)
	cmd.Stderr = env.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return before, after, rep, err
	}
	if err := cmd.Start(); err != nil {
		return before, after, rep, fmt.Errorf("clients process: %w", err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sawStart, sawEnd, sawReport bool
	stopProfile := func() error { return nil }
	defer func() { _ = stopProfile() }()
	for sc.Scan() && err == nil {
		switch line := sc.Text(); {
		case line == lineWindowStart:
			before, err = sample()
			sawStart = true
			if err == nil && cpuProfile != "" {
				var stop func() error
				if stop, err = startProfile(cpuProfile); err == nil {
					stopProfile = stop
				}
			}
		case line == lineWindowEnd:
			after, err = sample()
			sawEnd = true
			if perr := stopProfile(); err == nil {
				err = perr
			}
		case line == lineFailoverReady:
			if failover != nil {
				failover()
			}
		case strings.HasPrefix(line, "{"):
			err = json.Unmarshal([]byte(line), &rep)
			sawReport = true
		}
	}
	_, _ = io.Copy(io.Discard, out)
	if waitErr := cmd.Wait(); waitErr != nil && err == nil {
		err = fmt.Errorf("clients process: %w", waitErr)
	}
	if err == nil && !(sawStart && sawEnd && sawReport) {
		err = errors.New("clients process ended without a complete report")
	}
	return before, after, rep, err
}

// startProfile profiles this process, where only the nodes run; the
// function it returns stops the profile and writes the file, once.
func startProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	var once sync.Once
	var closeErr error
	return func() error {
		once.Do(func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				closeErr = fmt.Errorf("cpu profile: %w", err)
			}
		})
		return closeErr
	}, nil
}

// RunClients is the child's side: it reads a plan from in, runs it, and
// writes to out a line at each end of the window, then the report as one
// line.
func RunClients(ctx context.Context, in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(io.LimitReader(in, maxPlanBytes+1))
	if err != nil {
		return fmt.Errorf("read plan: %w", err)
	}
	if len(data) > maxPlanBytes {
		return fmt.Errorf("plan larger than %d bytes", maxPlanBytes)
	}
	var plan mediabench.Plan
	if err := json.Unmarshal(data, &plan); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	rep, err := mediabench.Run(ctx, plan, func(p mediabench.Phase) {
		switch p {
		case mediabench.WindowStart:
			fmt.Fprintln(out, lineWindowStart)
		case mediabench.WindowEnd:
			fmt.Fprintln(out, lineWindowEnd)
		case mediabench.FailoverReady:
			fmt.Fprintln(out, lineFailoverReady)
		}
	})
	if err != nil {
		return err
	}
	line, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", line)
	return err
}
