package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/entente-org/entente/internal/httpapi"
)

// readyTimeout bounds how long /readyz waits for the store to commit its
// probe write: a store that takes longer cannot serve users either.
const readyTimeout = 2 * time.Second

// readyz answers 200 only when the store has just committed a write (and,
// for a replica, NATS is connected and it is not draining): a
// node whose disk is full, whose database turned read-only or whose write
// lock is held by someone else keeps answering pings, but cannot take a
// single action.
func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	if l := n.replicas; l != nil {
		// A replica cut off from NATS cannot place conferences nor hear
		// the others; a draining one is going away (docs/replicas.md).
		reason := ""
		switch {
		case l.c.Draining():
			reason = "replica draining"
		case !l.c.Connected():
			reason = "NATS disconnected"
		}
		if reason != "" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{
				"status": "unavailable", "store": n.store.Backend(), "reason": reason, "replica": l.c.Self().ID,
			})
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := n.store.CheckWritable(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("store: a write did not complete within %s (is the database locked by another writer, or its disk stalled?): %w", readyTimeout, err)
		}
		// The cause goes to the request log (one line, with the request
		// id) and, for the operator's probe, into the answer.
		httpapi.RecordCause(w, err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"status": "unavailable", "store": n.store.Backend(), "reason": "store cannot write", "cause": err.Error(),
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "store": n.store.Backend()})
}
