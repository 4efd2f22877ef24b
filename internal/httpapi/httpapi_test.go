package httpapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/httpapi"
)

func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		body       string
		retryAfter string
	}{
		{"refusal", httpapi.Forbidden("%s may not invite", "did:web:b.example"), 403,
			`{"error":{"code":"forbidden","message":"did:web:b.example may not invite","request_id":"r1"}}`, ""},
		{"limit", httpapi.TooManyRequests(1500*time.Millisecond, "slow down"), 429,
			`{"error":{"code":"too_many_requests","message":"slow down","request_id":"r1"}}`, "2"},
		{"wrapped refusal", errors.Join(errors.New("context"), httpapi.NotFound("unknown conference c-1")), 404,
			`{"error":{"code":"not_found","message":"unknown conference c-1","request_id":"r1"}}`, ""},
		{"own failure", errors.New("disk full at /var/lib"), 500,
			`{"error":{"code":"internal","message":"internal error","request_id":"r1"}}`, ""},
		{"refusal with status", &httpapi.Error{Status: 502, Code: "internal", Message: "the homeserver is unreachable"}, 502,
			`{"error":{"code":"internal","message":"the homeserver is unreachable","request_id":"r1"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			w.Header().Set(httpapi.RequestIDHeader, "r1")
			httpapi.WriteError(w, tc.err)
			if w.Code != tc.status || w.Body.String() != tc.body {
				t.Errorf("answer %d %s, want %d %s", w.Code, w.Body, tc.status, tc.body)
			}
			if got := w.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
		})
	}
}

// The cause of a 5xx answer reaches the outermost recorder, the node's
// request log, even through a recorder of the bridge inside it; the first
// cause recorded, the most specific, is the one kept.
func TestStatusRecorderKeepsFirstCause(t *testing.T) {
	outer := httpapi.NewStatusRecorder(httptest.NewRecorder())
	inner := httpapi.NewStatusRecorder(outer)
	cause := errors.New("issue guest: store closed")
	httpapi.RecordCause(inner, cause)
	httpapi.WriteRefusal(inner, http.StatusInternalServerError, "internal", "could not issue a guest token")
	if inner.Status != 500 || outer.Status != 500 {
		t.Errorf("statuses inner %d outer %d, want 500", inner.Status, outer.Status)
	}
	if inner.Cause != cause || outer.Cause != cause {
		t.Errorf("causes inner %v outer %v, want %v", inner.Cause, outer.Cause, cause)
	}

	plain := httpapi.NewStatusRecorder(httptest.NewRecorder())
	_, _ = plain.Write([]byte("{}"))
	if plain.Status != http.StatusOK || plain.Cause != nil {
		t.Errorf("body without a status: %d %v, want 200 and no cause", plain.Status, plain.Cause)
	}
}
