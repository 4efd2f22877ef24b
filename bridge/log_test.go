package bridge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer the bridge's goroutines may write to while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// records returns the JSON log records written so far.
func (s *syncBuffer) records(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// mautrix's own log lines reach the node's slog handler, with their level,
// message and fields, under the bridge's component.
func TestMautrixLogsReachTheNodeLog(t *testing.T) {
	e := newEnv(t)
	var buf syncBuffer
	e.opts.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b := e.start(t)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut,
		"http://"+b.Addr().String()+"/_matrix/app/v1/transactions/txn-bad", strings.NewReader("{not json"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.reg.ServerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("transaction that is not JSON: status %d, want 400", resp.StatusCode)
	}
	var got map[string]any
	waitFor(t, "mautrix's error in the node log", func() (bool, error) {
		for _, r := range buf.records(t) {
			if r["msg"] == "Failed to parse transaction content" {
				got = r
				return true, nil
			}
		}
		return false, nil
	})
	want := map[string]any{"level": "ERROR", "component": "bridge", "library": "mautrix", "transaction_id": "txn-bad"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("record %v: %s = %v, want %v", got, k, got[k], v)
		}
	}
	if e, _ := got["error"].(string); !strings.Contains(e, "invalid character") {
		t.Errorf("record %v: error = %q, want the JSON error", got, e)
	}
	// Debug lines stay out of a handler at info level.
	for _, r := range buf.records(t) {
		if r["level"] == "DEBUG" {
			t.Errorf("debug record at info level: %v", r)
		}
	}
}
