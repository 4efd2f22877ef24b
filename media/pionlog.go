package media

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs sends pion's own logs (ICE, DTLS, SCTP, SRTP) to the node's
// structured log, so an operator reads one format. pion reports at error
// level what a remote party can provoke (a bad DTLS handshake, a closed
// socket at shutdown), so its errors are warnings here, and its warnings
// and information are debug. Its trace and debug output is dropped: some
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

func (l pionLogger) Trace(string)                   {}
func (l pionLogger) Tracef(string, ...any)          {}
func (l pionLogger) Debug(string)                   {}
func (l pionLogger) Debugf(string, ...any)          {}
func (l pionLogger) Info(msg string)                { l.at(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, a ...any)  { l.atf(slog.LevelDebug, format, a...) }
func (l pionLogger) Warn(msg string)                { l.at(slog.LevelDebug, msg) }
func (l pionLogger) Warnf(format string, a ...any)  { l.atf(slog.LevelDebug, format, a...) }
func (l pionLogger) Error(msg string)               { l.at(slog.LevelWarn, msg) }
func (l pionLogger) Errorf(format string, a ...any) { l.atf(slog.LevelWarn, format, a...) }
