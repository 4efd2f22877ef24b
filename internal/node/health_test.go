package node

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/store/storetest"
)

// logCapture keeps a node's log records as JSON objects.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the records whose text contains s.
func (l *logCapture) records(t *testing.T, s string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if !strings.Contains(line, s) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

type answer struct {
	code      int
	requestID string
	body      map[string]any // nil when the body is not an object
}

func call(t *testing.T, c *http.Client, method, url, token string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, requestID: resp.Header.Get("X-Request-Id")}
	if !json.Valid(b) {
		t.Fatalf("%s %s: body %q is not JSON", method, url, b)
	}
	_ = json.Unmarshal(b, &a.body)
	return a
}

// checkLoggedOnce asserts that exactly one record mentions cause: the
// request log's line for the request a, with its id and cause.
func checkLoggedOnce(t *testing.T, logs *logCapture, a answer, route, cause string) {
	t.Helper()
	recs := logs.records(t, cause)
	if len(recs) != 1 {
		t.Fatalf("%d log records mention %q, want exactly 1: %v", len(recs), cause, recs)
	}
	r := recs[0]
	if r["msg"] != "request failed" || r["level"] != "ERROR" || r["request_id"] != a.requestID ||
		r["route"] != route || r["status"] != float64(a.code) || !strings.Contains(r["err"].(string), cause) {
		t.Fatalf("log record = %v, want an ERROR \"request failed\" on %s with request_id %s, status %d and the cause", r, route, a.requestID, a.code)
	}
}

// /readyz answers 503 naming the cause while the store cannot commit a
// write, logs it once with the request id, and answers 200 again once the
// store can.
func TestReadyzFailsWhileStoreCannotWrite(t *testing.T) {
	cases := []struct {
		backend string
		// setup configures the node and returns what breaks and mends it.
		setup func(t *testing.T, c *config.Config, dir string) (breakStore, mend func())
		cause string
	}{
		{"sqlite", func(t *testing.T, c *config.Config, dir string) (func(), func()) {
			var release func()
			return func() { release = storetest.HoldSQLiteWriteLock(t, filepath.Join(dir, "entente.db")) }, func() { release() }
		}, "is the database locked by another writer"},
		{"postgres", func(t *testing.T, c *config.Config, _ string) (func(), func()) {
			url, setReadOnly := storetest.ReadOnlyPostgres(t)
			c.Database.URL = url
			return func() { setReadOnly(t, true) }, func() { setReadOnly(t, false) }
		}, "cannot execute INSERT in a read-only transaction"},
	}
	for _, tc := range cases {
		t.Run(tc.backend, func(t *testing.T) {
			f := newFederation(t)
			logs := &logCapture{}
			var breakStore, mend func()
			n := f.startLogged(t, "ministry", func(c *config.Config) {
				breakStore, mend = tc.setup(t, c, c.Node.DataDir)
			}, logs.logger())
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
			c := f.client()
			ready := n.PublicURL() + "/readyz"
			if a := call(t, c, "GET", ready, ""); a.code != 200 || a.body["status"] != "ready" || a.body["store"] != tc.backend || len(a.requestID) != 24 {
				t.Fatalf("readyz on a writable store: %d %v (request id %q)", a.code, a.body, a.requestID)
			}

			breakStore()
			var a answer
			deadline := time.Now().Add(20 * time.Second)
			for {
				// PostgreSQL: the first query after the sessions were
				// ended may meet a dead connection instead.
				a = call(t, c, "GET", ready, "")
				if a.code == 503 && strings.Contains(a.body["cause"].(string), tc.cause) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("readyz while the store cannot write: %d %v, want 503 naming %q", a.code, a.body, tc.cause)
				}
			}
			if len(a.body) != 4 || a.body["status"] != "unavailable" || a.body["store"] != tc.backend || a.body["reason"] != "store cannot write" {
				t.Fatalf("readyz body = %v", a.body)
			}
			checkLoggedOnce(t, logs, a, "GET /readyz", tc.cause)
			if a := call(t, c, "GET", n.PublicURL()+"/healthz", ""); a.code != 200 {
				t.Fatalf("healthz while the store cannot write: %d", a.code)
			}

			mend()
			deadline = time.Now().Add(20 * time.Second)
			for a = call(t, c, "GET", ready, ""); a.code != 200; a = call(t, c, "GET", ready, "") {
				if time.Now().After(deadline) {
					t.Fatalf("readyz once the store can write again: %d %v", a.code, a.body)
				}
			}
			if len(a.body) != 2 || a.body["status"] != "ready" {
				t.Fatalf("readyz once the store can write again: %v", a.body)
			}
		})
	}
}

// A 500 of the client API answers with a request id, in the header and in
// the error body, and the node logs the failure once, with that id and the
// cause the user never sees.
func TestClientAPIServerErrorLoggedOnceWithCause(t *testing.T) {
	f := newFederation(t)
	logs := &logCapture{}
	n := f.startLogged(t, "ministry", nil, logs.logger())
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := accounts.AddUser(ctx, n.Store(), "alice", "Alice", false, time.Now()); err != nil {
		t.Fatal(err)
	}
	token, err := accounts.IssueToken(ctx, n.Store(), "alice", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := f.client()
	list := n.PublicURL() + "/api/v1/conferences"
	if a := call(t, c, "GET", list, token); a.code != 200 {
		t.Fatalf("GET /conferences: %d %v", a.code, a.body)
	}

	// Another process damages the database under the running node.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(n.cfg.Node.DataDir, "entente.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("ALTER TABLE conferences RENAME TO conferences_moved"); err != nil {
		t.Fatal(err)
	}
	a := call(t, c, "GET", list, token)
	want := map[string]any{"error": map[string]any{"code": "internal", "message": "internal error", "request_id": a.requestID}}
	if a.code != 500 || len(a.requestID) != 24 || !equalJSON(a.body, want) {
		t.Fatalf("GET /conferences without its table: %d %v (request id %q), want 500 %v", a.code, a.body, a.requestID, want)
	}
	checkLoggedOnce(t, logs, a, "/api/v1/", "no such table: conferences")

	// Each request has its own id.
	b := call(t, c, "GET", list, token)
	if b.code != 500 || b.requestID == a.requestID || len(logs.records(t, "no such table: conferences")) != 2 {
		t.Fatalf("second failure: %d, id %q (first %q), %d log records", b.code, b.requestID, a.requestID, len(logs.records(t, "no such table")))
	}
	if _, err := db.Exec("ALTER TABLE conferences_moved RENAME TO conferences"); err != nil {
		t.Fatal(err)
	}
	if a := call(t, c, "GET", list, token); a.code != 200 {
		t.Fatalf("GET /conferences once the table is back: %d %v", a.code, a.body)
	}
	// A refusal (4xx) carries the id too, and is not logged as a failure.
	if a := call(t, c, "GET", n.PublicURL()+"/api/v1/conferences/c-0000000000000000", token); a.code != 404 ||
		a.body["error"].(map[string]any)["request_id"] != a.requestID || len(a.requestID) != 24 {
		t.Fatalf("GET an unknown conference: %d %v (request id %q)", a.code, a.body, a.requestID)
	}
	if recs := logs.records(t, `"request failed"`); len(recs) != 2 {
		t.Fatalf("%d \"request failed\" records, want the 2 failures: %v", len(recs), recs)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
