package testwait

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestForReturnsWhenTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	if !For(10*time.Second, func() bool { return n.Add(1) == 3 }) {
		t.Fatal("For gave up on a condition that held on the third try")
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("condition tried %d times, want 3", got)
	}
}

func TestForGivesUpAtTheDeadline(t *testing.T) {
	var n atomic.Int32
	if For(3*Interval, func() bool { n.Add(1); return false }) {
		t.Fatal("For reported a condition that never held")
	}
	if got := n.Load(); got < 2 {
		t.Fatalf("condition tried %d times, want it tried again at the deadline", got)
	}
}

// fakeT records a failure instead of stopping the test.
type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper()                           {}
func (f *fakeT) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestUntilFailsWithTheMessage(t *testing.T) {
	f := &fakeT{TB: t}
	Until(f, Interval, func() bool { return false }, "the %s never came", "answer")
	if f.msg != "after 20ms: the answer never came" {
		t.Fatalf("failure format = %q", f.msg)
	}
}

func TestHoldsPollsForTheWholeSpan(t *testing.T) {
	var n atomic.Int32
	var last atomic.Int64
	start := time.Now()
	Holds(t, 5*Interval, func() error {
		n.Add(1)
		last.Store(int64(time.Since(start)))
		return nil
	})
	if d := time.Since(start); d < 5*Interval {
		t.Fatalf("Holds returned after %v, before its span", d)
	}
	// A busy machine stretches the pauses between tries, so their number
	// varies; what must hold is a first try and a last one at the span's end.
	if got := n.Load(); got < 2 {
		t.Fatalf("condition tried %d times over the span, want at least 2", got)
	}
	if l := time.Duration(last.Load()); l < 5*Interval {
		t.Fatalf("last try %v after the start, before the span ended", l)
	}
}

func TestHoldsFailsAtTheFirstBreach(t *testing.T) {
	f := &fakeT{TB: t}
	var n atomic.Int32
	Holds(f, time.Minute, func() error {
		if k := n.Add(1); k == 3 {
			return fmt.Errorf("breached on try %d", k)
		}
		return nil
	})
	if !strings.HasSuffix(f.msg, ": breached on try 3") || n.Load() != 3 {
		t.Fatalf("failure %q after %d tries, want it at the third", f.msg, n.Load())
	}
}
