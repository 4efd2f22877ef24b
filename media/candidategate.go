package media

import (
	"sync"

	"github.com/pion/webrtc/v4"
)

// candidateGate holds back local ICE candidates until the description they
// belong to has been sent, so a client never gets a candidate before its
// offer or answer.
type candidateGate struct {
	mu      sync.Mutex
	open    bool
	pending []webrtc.ICECandidateInit
}

func (g *candidateGate) add(c webrtc.ICECandidateInit, send func(webrtc.ICECandidateInit)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.open {
		g.pending = append(g.pending, c)
		return
	}
	send(c)
}

func (g *candidateGate) release(send func(webrtc.ICECandidateInit)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = true
	for _, c := range g.pending {
		send(c)
	}
	g.pending = nil
}

// hold closes the gate again until the next release.
func (g *candidateGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = false
}
