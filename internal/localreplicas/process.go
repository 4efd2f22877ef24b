package localreplicas

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Replica is one process of the node.
type Replica struct {
	ID   string
	Addr string // 127.0.0.1:port
	URL  string // https://Addr, also its internal_url
	// Env is the replica's settings, as given to its process (and to the
	// entente CLI run against the node).
	Env []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	// exitErr is the process's end, read after done is closed.
	exitErr error
}

// start runs replica i's process and waits for it to be ready.
func (n *Node) start(ctx context.Context, i int) error {
	r := n.Replicas[i]
	args := append(append([]string{}, n.opts.Command[1:]...), "serve")
	cmd := exec.Command(n.opts.Command[0], args...)
	// The replica's own settings come last: they win over any of the
	// same name in the environment.
	cmd.Env = append(append(os.Environ(), n.opts.Env...), r.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("replica %s: %w", r.ID, err)
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			if n.opts.Lines != nil {
				n.opts.Lines(i, line)
			}
			if strings.Contains(line, "node ready") {
				once.Do(func() { close(ready) })
			}
			if w := n.opts.Log; w != nil && (strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || strings.Contains(line, "DATA RACE")) {
				fmt.Fprintf(w, "replica %s: %s\n", r.ID, line)
			}
		}
		r.exitErr = cmd.Wait()
		close(done)
	}()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	t := time.NewTimer(readyLimit)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-done:
		return fmt.Errorf("replica %s exited before it was ready (%v)", r.ID, cmd.ProcessState)
	case <-t.C:
		return fmt.Errorf("replica %s not ready within %s", r.ID, readyLimit)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Replica) process() (*exec.Cmd, chan struct{}, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return nil, nil, fmt.Errorf("replica %s is not running", r.ID)
	}
	return r.cmd, r.done, nil
}

// Kill ends the replica with SIGKILL, no drain, no goodbye to the roster,
// and waits for the process to end.
func (r *Replica) Kill() error {
	cmd, done, err := r.process()
	if err != nil {
		return err
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill replica %s: %w", r.ID, err)
	}
	<-done
	return nil
}

// Terminate sends SIGTERM, which drains the replica, and returns at once;
// Exited reports the end.
func (r *Replica) Terminate() error {
	cmd, _, err := r.process()
	if err != nil {
		return err
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("terminate replica %s: %w", r.ID, err)
	}
	return nil
}

// stop terminates the replica and waits within for its end, then kills it.
// A replica stopped with SIGTERM drains and exits 0; anything else (a race
// report, a crash) is an error.
func (r *Replica) stop(within time.Duration) error {
	cmd, done, err := r.process()
	if err != nil {
		return err
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if r.exitErr != nil {
			return fmt.Errorf("replica %s stopped badly: %w", r.ID, r.exitErr)
		}
		return nil
	case <-time.After(within):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("replica %s did not stop within %s of SIGTERM", r.ID, within)
	}
}

// Pid is the process's id (0 before it started).
func (r *Replica) Pid() int {
	cmd, _, err := r.process()
	if err != nil {
		return 0
	}
	return cmd.Process.Pid
}

// Exited is closed when the process has ended (nil before it started).
func (r *Replica) Exited() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// ExitErr is the process's exit status once Exited is closed.
func (r *Replica) ExitErr() error {
	select {
	case <-r.Exited():
		return r.exitErr
	default:
		return nil
	}
}

// Running reports whether the replica's process is alive.
func (r *Replica) Running() bool {
	done := r.Exited()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Kill ends replica i with SIGKILL (Replica.Kill).
func (n *Node) Kill(i int) error { return n.Replicas[i].Kill() }

// Running reports whether replica i's process is alive.
func (n *Node) Running(i int) bool { return n.Replicas[i].Running() }

// CPU is the CPU time (user and system) the running replicas have spent,
// from /proc/<pid>/stat.
func (n *Node) CPU() (time.Duration, error) {
	var total time.Duration
	for _, r := range n.Replicas {
		if !r.Running() {
			continue
		}
		d, err := processCPU(r.Pid())
		if err != nil {
			return 0, fmt.Errorf("replica %s: %w", r.ID, err)
		}
		total += d
	}
	return total, nil
}

// processCPU reads a process's user and system time from /proc.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("process CPU time: %w", err)
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("process CPU time: /proc/%d/stat too short", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("process CPU time: /proc/%d/stat unreadable", pid)
	}
	// USER_HZ is 100 on every Linux platform Go supports.
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
