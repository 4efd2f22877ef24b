package bridge

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/rs/zerolog"
)

// mautrixLogger is a zerolog logger that writes into h: mautrix logs
// through zerolog, and its errors (a transaction it could not parse, an
// event handler that panicked, a request that kept failing) belong in the
// node's log beside the bridge's own lines.
func mautrixLogger(h slog.Handler) zerolog.Logger {
	w := slogWriter{h: h}
	level := zerolog.Disabled
	for _, l := range []struct {
		z zerolog.Level
		s slog.Level
	}{{zerolog.ErrorLevel, slog.LevelError}, {zerolog.WarnLevel, slog.LevelWarn}, {zerolog.InfoLevel, slog.LevelInfo}, {zerolog.DebugLevel, slog.LevelDebug}} {
		if h.Enabled(context.Background(), l.s) {
			level = l.z
		}
	}
	return zerolog.New(w).Level(level)
}

// slogWriter turns each JSON line zerolog writes into one slog record: its
// "level" and "message" become the record's, every other field an attribute
// under its own key.
type slogWriter struct{ h slog.Handler }

func (w slogWriter) Write(p []byte) (int, error) {
	return w.WriteLevel(zerolog.NoLevel, p)
}

func (w slogWriter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	var fields map[string]any
	if err := json.Unmarshal(p, &fields); err != nil {
		// zerolog writes JSON; keep the line whatever it is.
		fields = map[string]any{zerolog.MessageFieldName: string(p)}
	}
	msg, _ := fields[zerolog.MessageFieldName].(string)
	delete(fields, zerolog.MessageFieldName)
	delete(fields, zerolog.LevelFieldName)
	delete(fields, zerolog.TimestampFieldName)
	r := slog.NewRecord(time.Now(), slogLevel(level), msg, 0)
	for k, v := range fields {
		r.AddAttrs(slog.Any(k, v))
	}
	ctx := context.Background()
	if !w.h.Enabled(ctx, r.Level) {
		return len(p), nil
	}
	return len(p), w.h.Handle(ctx, r)
}

func slogLevel(l zerolog.Level) slog.Level {
	switch l {
	case zerolog.TraceLevel, zerolog.DebugLevel:
		return slog.LevelDebug
	case zerolog.WarnLevel:
		return slog.LevelWarn
	case zerolog.ErrorLevel, zerolog.FatalLevel, zerolog.PanicLevel:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
