package metadata

import (
	"context"
	"log/slog"
	"maps"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapWarn is the level below which etcd's own log output is dropped: etcd
// logs every raft step and listener at info, which would drown the broker's
// log.
const zapWarn = zapcore.WarnLevel

// benignEmbedded lists warnings that a single-member embedded etcd without
// auth always emits and that ask nothing of the operator.
var benignEmbedded = []string{
	"Running http and grpc server on single port",
	"simple token is not cryptographically signed",
}

// newZapLogger returns a zap logger that forwards entries at or above min
// to log, so etcd's messages land in the broker's structured log. Entries
// for which demote returns true are logged at Debug instead (demote may be
// nil).
func newZapLogger(log *slog.Logger, min zapcore.Level, demote func(msg string, attrs []slog.Attr) bool) *zap.Logger {
	return zap.New(&slogCore{log: log, min: min, demote: demote})
}

// slogCore is a zapcore.Core writing to a *slog.Logger.
type slogCore struct {
	log    *slog.Logger
	min    zapcore.Level
	demote func(msg string, attrs []slog.Attr) bool
	attrs  []slog.Attr
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= c.min }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, min: c.min, demote: c.demote, attrs: append(slices.Clip(c.attrs), fieldAttrs(fields)...)}
}

func (c *slogCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *slogCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	level := slog.LevelInfo
	switch {
	case ent.Level >= zapcore.ErrorLevel:
		level = slog.LevelError
	case ent.Level >= zapcore.WarnLevel:
		level = slog.LevelWarn
	case ent.Level < zapcore.InfoLevel:
		level = slog.LevelDebug
	}
	attrs := append(slices.Clip(c.attrs), fieldAttrs(fields)...)
	if c.demote != nil && c.demote(ent.Message, attrs) {
		level = slog.LevelDebug
	}
	if ent.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", ent.LoggerName))
	}
	c.log.LogAttrs(context.Background(), level, ent.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

// fieldAttrs converts zap fields through zap's own map encoder, so every
// field type (durations, errors, arrays, objects) renders as zap would.
func fieldAttrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]slog.Attr, 0, len(enc.Fields))
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		out = append(out, slog.Any(k, enc.Fields[k]))
	}
	return out
}
