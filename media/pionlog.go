package media

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/pion/logging"
)

// pionLogs sends pion's own logs (ICE, DTLS, SCTP, SRTP) to the node's
// structured log, so an operator reads one format. pion reports at error
// level what a remote party can provoke (a bad DTLS handshake), so its
// errors are warnings here, but for reads and writes on a socket being
// closed (errorLevel), and its warnings and information are debug. Its trace and debug output is dropped: some
// of it formats structures other goroutines are changing.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

// at logs msg if level is enabled.
func (l pionLogger) at(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

// atf formats and logs only when level is enabled.
func (l pionLogger) atf(level slog.Level, format string, a ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.at(level, fmt.Sprintf(format, a...))
	}
}

func (l pionLogger) Trace(string)                  {}
func (l pionLogger) Tracef(string, ...any)         {}
func (l pionLogger) Debug(string)                  {}
func (l pionLogger) Debugf(string, ...any)         {}
func (l pionLogger) Info(msg string)               { l.at(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, a ...any) { l.atf(slog.LevelDebug, format, a...) }
func (l pionLogger) Warn(msg string)               { l.at(slog.LevelDebug, msg) }
func (l pionLogger) Warnf(format string, a ...any) { l.atf(slog.LevelDebug, format, a...) }
func (l pionLogger) Error(msg string)              { l.at(errorLevel(msg), msg) }

func (l pionLogger) Errorf(format string, a ...any) {
	// Formatted only when a warning would be logged; a debug one then
	// still goes through the handler's own level check.
	if l.log.Enabled(context.Background(), slog.LevelWarn) {
		msg := fmt.Sprintf(format, a...)
		l.at(errorLevel(msg), msg)
	}
}

// errorLevel is the level of one of pion's errors: a read or write on a
// socket or pipe that is being closed happens only while a connection or
// the node shuts down, in goroutines pion stops a moment later, so it is
// debug; any other error is a warning.
func errorLevel(msg string) slog.Level {
	if strings.Contains(msg, io.ErrClosedPipe.Error()) || strings.Contains(msg, net.ErrClosed.Error()) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
