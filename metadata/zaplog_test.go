package metadata

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestZapBridgeLevelsAndFields(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	demote := func(msg string, _ []slog.Attr) bool { return msg == "routine" }
	zl := newZapLogger(log, zapWarn, demote).Named("raft").With(zap.String("member", "m1"))

	zl.Info("dropped below warn")
	zl.Warn("slow apply", zap.Duration("took", 1500000000), zap.Error(errors.New("boom")))
	zl.Error("disk failed", zap.Int("n", 3))
	zl.Warn("routine")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{
		`level=WARN msg="slow apply" member=m1 error=boom took=1.5s logger=raft`,
		`level=ERROR msg="disk failed" member=m1 n=3 logger=raft`,
		`level=DEBUG msg=routine member=m1 logger=raft`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %q, want it to contain %q", i, lines[i], want)
		}
	}
}
