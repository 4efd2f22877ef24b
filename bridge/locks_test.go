package bridge

import (
	"fmt"
	"sync"
	"testing"
)

// Work on one conference is serialised, and a conference's lock entry is
// gone once nobody holds or waits for it, so ended conferences leave
// nothing behind.
func TestConferenceLocksSerialiseAndShrink(t *testing.T) {
	var locks conferenceLocks
	var wg sync.WaitGroup
	inside := make(map[string]int)
	var mu sync.Mutex
	for i := range 200 {
		conference := fmt.Sprintf("conf-%d", i%4)
		wg.Go(func() {
			defer locks.lock(conference)()
			mu.Lock()
			inside[conference]++
			n := inside[conference]
			mu.Unlock()
			if n != 1 {
				t.Errorf("%d holders of the lock of %s at once", n, conference)
			}
			mu.Lock()
			inside[conference]--
			mu.Unlock()
		})
	}
	wg.Wait()
	if n := locks.held(); n != 0 {
		t.Fatalf("%d lock entries left after all work ended, want 0", n)
	}

	unlock := locks.lock("conf-ended")
	if n := locks.held(); n != 1 {
		t.Fatalf("%d entries while a lock is held, want 1", n)
	}
	unlock()
	if n := locks.held(); n != 0 {
		t.Fatalf("%d entries after the conference's work ended, want 0", n)
	}
}
