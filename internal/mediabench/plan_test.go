package mediabench

import (
	"strings"
	"testing"
	"time"
)

// A plan names each participant's kind of client, native or LiveKit, and
// refuses any other.
func TestPlanKinds(t *testing.T) {
	p := func(kind string) Plan {
		return Plan{Duration: time.Second, Participants: []Participant{{Name: "p1", URL: "wss://n", Token: "t", Kind: kind}}}
	}
	for _, kind := range []string{"", KindNative, KindLiveKit} {
		if err := p(kind).validate(); err != nil {
			t.Errorf("kind %q: %v", kind, err)
		}
	}
	err := p("sip").validate()
	if err == nil || !strings.Contains(err.Error(), `plan: participant "p1": kind must be native or livekit, got "sip"`) {
		t.Fatalf("kind sip: %v", err)
	}
}
