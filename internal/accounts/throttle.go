package accounts

import (
	"sync"
	"time"
)

// failureWindow counts failures per key (a user name and address, or an
// address) within a sliding window, and refuses a key with limit of them.
//
// It never forgets a key that still has a failure within the window. When
// capacity keys are tracked, a key it does not track is refused until one
// of them expires: a flood of made-up user names cannot push a victim's
// entry out, which would reset its count; it fills the table, and then
// every attempt without a count of its own waits, but no one gets more
// tries at a password than limit.
type failureWindow struct {
	limit    int
	window   time.Duration
	capacity int
	now      func() time.Time

	mu    sync.Mutex
	times map[string][]time.Time // key → failure times, oldest first
	// queue holds every failure counted, oldest first, so that expired
	// ones are dropped from the front without scanning the table.
	queue []failure
}

type failure struct {
	key string
	at  time.Time
}

func newFailureWindow(limit int, window time.Duration, capacity int, now func() time.Time) *failureWindow {
	return &failureWindow{limit: limit, window: window, capacity: capacity, now: now, times: map[string][]time.Time{}}
}

// verdict is what allow decides about a key.
type verdict int

const (
	allowed   verdict = iota
	limited           // the key has limit failures within the window
	saturated         // the table is full and the key has no entry in it
)

// allow tells whether key may try again.
func (f *failureWindow) allow(key string) verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prune()
	n, tracked := len(f.times[key]), f.times[key] != nil
	switch {
	case n >= f.limit:
		return limited
	case !tracked && len(f.times) >= f.capacity:
		return saturated
	}
	return allowed
}

// add counts a failure of key. A key the table has no room for is not
// counted: allow refuses it before it can fail.
func (f *failureWindow) add(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prune()
	if f.times[key] == nil && len(f.times) >= f.capacity {
		return
	}
	at := f.now()
	f.times[key] = append(f.times[key], at)
	f.queue = append(f.queue, failure{key, at})
}

// prune drops the failures older than the window. The queue and each key's
// times are both in the order failures were counted, so the front of the
// queue is the oldest failure of its key. The caller holds f.mu.
func (f *failureWindow) prune() {
	cutoff := f.now().Add(-f.window)
	for len(f.queue) > 0 && !f.queue[0].at.After(cutoff) {
		k := f.queue[0].key
		f.queue[0] = failure{}
		f.queue = f.queue[1:]
		if ts := f.times[k][1:]; len(ts) > 0 {
			f.times[k] = ts
		} else {
			delete(f.times, k)
		}
	}
	if len(f.queue) == 0 {
		f.queue = nil // let go of the array the front was cut from
	}
}
