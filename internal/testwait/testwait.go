// Package testwait makes tests wait for the condition they mean, with a
// generous deadline, instead of sleeping for a fixed time: a test then
// passes as soon as the condition holds on a fast machine and still passes
// on a loaded one, and when it fails it says what did not happen.
package testwait

import (
	"testing"
	"time"
)

// Interval is how often a condition is polled.
const Interval = 20 * time.Millisecond

// For polls cond every Interval until it holds or within has passed, and
// reports whether it held. cond is always tried at least once, and once
// more at the deadline.
func For(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(Interval)
	}
}

// Until polls cond until it holds, and fails t with the message made of
// format and args if it does not within the given time.
func Until(t testing.TB, within time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !For(within, cond) {
		t.Fatalf("after %v: "+format, append([]any{within}, args...)...)
	}
}

// Holds calls check every Interval for the whole of d, and fails t with
// its error the first time it returns one. It is for properties about a
// span of time, such as "stays connected for longer than a timeout", not
// for waiting.
func Holds(t testing.TB, d time.Duration, check func() error) {
	t.Helper()
	start := time.Now()
	for {
		if err := check(); err != nil {
			t.Fatalf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
			return
		}
		if time.Since(start) >= d {
			return
		}
		time.Sleep(Interval)
	}
}
