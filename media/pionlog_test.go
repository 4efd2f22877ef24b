package media

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// lockedBuffer is a log sink safe for pion's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// With one shared UDP port, pion's own logs reach the node's structured log
// (scoped "pion"), and a clean shutdown logs nothing at warning or above:
// the socket's reader does not take its own closing for an error.
func TestSharedPortLogsThroughTheNode(t *testing.T) {
	port := freePort(t)

	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := &testNode{membership: &fakeMembership{denied: map[string]error{}}, registry: prometheus.NewRegistry()}
	s, err := New(Options{Membership: n.membership, Registry: n.registry, IncludeLoopback: true, UDPPort: port, Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	n.sfu = s
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		s.ServeSignal(w, r, q.Get("conference"), q.Get("user"), "Name of "+q.Get("user"), "org.example")
	}))
	defer n.srv.Close()

	pub := connect(t, n, "conf-log", "ann@did:web:a", clientOptions{})
	sub := connect(t, n, "conf-log", "bob@did:web:a", clientOptions{autoSubscribe: true})
	audio := &testTrack{tag: 'l', kind: "audio", source: "microphone"}
	pub.publish(audio)
	checkExact(t, audio, sub.waitMedia(sub.waitTrackAdded(audio, pub.user), 10, 10*time.Second))

	// The node shuts down under its clients: what they then see is expected.
	pub.done.Store(true)
	sub.done.Store(true)
	n.srv.CloseClientConnections()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "pion=") {
		t.Fatalf("no pion log reached the node's log:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("shutdown logged: %s", line)
		}
	}
}

// A pion error about a socket or pipe being closed is debug; any other
// pion error is a warning, at the node's usual level as at debug.
func TestPionErrorLevels(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var logs lockedBuffer
		f := pionLogs{slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: level}))}
		l := f.NewLogger("ice")
		l.Errorf("Failed to write packet: %v", "io: read/write on closed pipe")
		l.Error("Failed to read UDP packet: read udp4 127.0.0.1:1: use of closed network connection")
		l.Errorf("Failed to handle DTLS: %s", "bad certificate")
		got := logs.String()
		if n := strings.Count(got, "level=WARN"); n != 1 || !strings.Contains(got, `level=WARN msg="Failed to handle DTLS: bad certificate" pion=ice`) {
			t.Errorf("at %v, want exactly the DTLS error as a warning, got:\n%s", level, got)
		}
		if want := map[slog.Level]int{slog.LevelInfo: 0, slog.LevelDebug: 2}[level]; strings.Count(got, "level=DEBUG") != want {
			t.Errorf("at %v, want %d debug lines, got:\n%s", level, want, got)
		}
	}
}
