package httpapi

import "net/http"

// StatusRecorder wraps a ResponseWriter to remember the status it answered
// and the cause of a failure a handler recorded (RecordCause), for the
// node's request log and for the bridge, which marks a Matrix transaction
// applied only after a 200.
type StatusRecorder struct {
	http.ResponseWriter
	// Status is the status written, 200 when the handler wrote a body
	// without one.
	Status int
	// Cause is the first cause recorded for a failure, nil when none was.
	Cause error
}

// NewStatusRecorder wraps w.
func NewStatusRecorder(w http.ResponseWriter) *StatusRecorder {
	return &StatusRecorder{ResponseWriter: w, Status: http.StatusOK}
}

// RecordCause implements CauseRecorder. The first cause is kept: it is the
// most specific, written where the failure happened, before the generic
// refusal that answers it. It is handed on to the writer underneath, so a
// recorder inside another does not hide the cause from the outer one.
func (s *StatusRecorder) RecordCause(err error) {
	if s.Cause != nil {
		return
	}
	s.Cause = err
	RecordCause(s.ResponseWriter, err)
}

// WriteHeader implements http.ResponseWriter.
func (s *StatusRecorder) WriteHeader(status int) {
	s.Status = status
	s.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the underlying writer (flush,
// hijack for WebSockets).
func (s *StatusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
