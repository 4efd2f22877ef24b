// Package httpapi owns what every HTTP API of the node answers the same
// way: the JSON error envelope {"error":{"code","message","request_id"}}
// with its status codes (spec/federation.md §3.3, spec/client-api.md §1),
// the request id header, and the recorder that lets the node's request log
// see an answer's status and the cause of a failure. The federation API, the
// client API, sign-in and the Matrix bridge all answer through it, so an
// error looks the same whichever of them refused.
//
// It imports nothing of Entente's.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error is a refusal that a peer or client is told about: the one place
// where protocol errors get their HTTP status and code (spec/federation.md
// §9). Its Message is sent to the peer, so it describes the peer's request,
// never our internals.
type Error struct {
	Status  int
	Code    string
	Message string
	Err     error
	// RetryAfter, when positive, is sent as the Retry-After header: the
	// peer may send again after it (spec/federation.md §8).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func (e *Error) Unwrap() error { return e.Err }

// newError formats like fmt.Errorf, so %w keeps the cause reachable through
// errors.Is and errors.As.
func newError(status int, code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Status: status, Code: code, Message: err.Error(), Err: errors.Unwrap(err)}
}

// BadRequest is a malformed or expired message, or a strict decoding failure.
func BadRequest(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, "bad_request", format, args...)
}

// Unauthorized is a missing or invalid signature, digest, date or key.
func Unauthorized(format string, args ...any) *Error {
	return newError(http.StatusUnauthorized, "unauthorized", format, args...)
}

// Forbidden is a node not on the trust list, a wrong destination, a sender
// of another node or a broken authorization rule.
func Forbidden(format string, args ...any) *Error {
	return newError(http.StatusForbidden, "forbidden", format, args...)
}

// NotFound is an unknown conference.
func NotFound(format string, args ...any) *Error {
	return newError(http.StatusNotFound, "not_found", format, args...)
}

// Conflict is an out-of-order record or an id reused with other content.
func Conflict(format string, args ...any) *Error {
	return newError(http.StatusConflict, "conflict", format, args...)
}

// Gone is an event for a conference that has ended.
func Gone(format string, args ...any) *Error {
	return newError(http.StatusGone, "gone", format, args...)
}

// TooManyRequests is a peer over one of its per-peer limits
// (spec/federation.md §3.4): it may send again after retryAfter, rounded up
// to whole seconds on the wire.
func TooManyRequests(retryAfter time.Duration, format string, args ...any) *Error {
	e := newError(http.StatusTooManyRequests, "too_many_requests", format, args...)
	e.RetryAfter = retryAfter
	return e
}

// TooLarge is a body over the limit.
func TooLarge(format string, args ...any) *Error {
	return newError(http.StatusRequestEntityTooLarge, "too_large", format, args...)
}

// Unavailable is this node's own transient trouble with a request that may
// succeed later, such as a DID document it cannot fetch now (spec/federation.md
// §3.2 step 7): never final for the sender (§8), who may retry after retryAfter.
func Unavailable(retryAfter time.Duration, format string, args ...any) *Error {
	e := newError(http.StatusServiceUnavailable, "unavailable", format, args...)
	e.RetryAfter = retryAfter
	return e
}

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the "error" member of an ErrorBody.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// RequestIDHeader names the response header that carries the id the node
// gave the request; the same id is in the error body and in the log line of
// a failed request, so a user's report can be matched to its cause.
const RequestIDHeader = "X-Request-Id"

// CauseRecorder is implemented by a ResponseWriter that logs failed
// requests: it is told the cause of a 5xx answer, which the answer itself
// never shows, so that the failure is logged once, with its cause.
type CauseRecorder interface {
	RecordCause(err error)
}

// RecordCause hands err to the CauseRecorder under w, if any, looking
// through writers that wrap another (http.ResponseController's Unwrap).
func RecordCause(w http.ResponseWriter, err error) {
	for w != nil {
		if r, ok := w.(CauseRecorder); ok {
			r.RecordCause(err)
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// WriteError answers with err's status and
// {"error":{"code","message","request_id"}} (spec/federation.md §3.3).
// Anything that is not an *Error is our own failure: the client gets a bare
// 500 and the cause goes to the request's log line (RecordCause), never to
// the client.
func WriteError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	detail := ErrorDetail{Code: "internal", Message: "internal error"}
	if fe, ok := errors.AsType[*Error](err); ok {
		status = fe.Status
		detail = ErrorDetail{Code: fe.Code, Message: fe.Message}
		if fe.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(fe.RetryAfter), 10))
		}
	}
	if status >= 500 {
		RecordCause(w, err)
	}
	detail.RequestID = w.Header().Get(RequestIDHeader)
	body, mErr := json.Marshal(ErrorBody{Error: detail})
	if mErr != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// retryAfterSeconds rounds d up to whole seconds, at least 1: Retry-After
// is delta-seconds (RFC 9110 §10.2.3), and 0 would invite an immediate retry.
func retryAfterSeconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}

// WriteRefusal answers with status and an error body of code and message,
// for refusals that need a status no constructor above makes (405, 502).
func WriteRefusal(w http.ResponseWriter, status int, code, message string) {
	WriteError(w, &Error{Status: status, Code: code, Message: message})
}
