package federation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/entente-org/entente/store"
)

// An outcome that could not be recorded is an error only when something is
// wrong: a lost lease, or the node stopping during the attempt, leaves the
// message pending to be sent again, and is said at level INFO.
func TestOutboxRecordLevels(t *testing.T) {
	for _, c := range []struct {
		err   error
		level string
		says  string
	}{
		{fmt.Errorf("store: mark outbox message 26 delivered: %w", context.Canceled), "INFO", "sent again after the next start"},
		{fmt.Errorf("store: mark outbox message 26 delivered: %w", store.ErrLeaseLost), "INFO", "the new holder sends the message again"},
		{errors.New("store: mark outbox message 26 delivered: disk I/O error"), "ERROR", "cannot mark delivered"},
	} {
		var out bytes.Buffer
		(&Service{}).record(slog.New(slog.NewTextHandler(&out, nil)), "mark delivered", c.err)
		if got := out.String(); !strings.Contains(got, "level="+c.level) || !strings.Contains(got, c.says) {
			t.Errorf("%v: logged %q, want level %s saying %q", c.err, got, c.level, c.says)
		}
	}
	var out bytes.Buffer
	(&Service{}).record(slog.New(slog.NewTextHandler(&out, nil)), "mark delivered", nil)
	if out.Len() != 0 {
		t.Errorf("a recorded outcome logged %q", out.String())
	}
}
