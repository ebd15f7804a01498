package txn

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestTxnImportRules keeps the package pure: the standard library, kmsg,
// kerr, the shared coordinator package and the dependency-free
// internal/uniq only (docs: coordinator -> kmsg/kerr; never storage,
// metadata, protocol, broker or etcd).
func TestTxnImportRules(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	allowed := []string{
		"github.com/sluicedev/sluice/coordinator/txn",
		"github.com/twmb/franz-go/pkg/kmsg",
		"github.com/twmb/franz-go/pkg/kerr",
		"github.com/sluicedev/sluice/internal/uniq",
	}
	for _, dep := range strings.Fields(string(out)) {
		ok := dep == "github.com/sluicedev/sluice/coordinator"
		for _, a := range allowed {
			ok = ok || dep == a || strings.HasPrefix(dep, a+"/")
		}
		if !ok {
			t.Errorf("coordinator/txn depends on %s", dep)
		}
	}
}

func TestTxnNewConfig(t *testing.T) {
	t.Parallel()
	pids := func(context.Context) (int64, error) { return 1, nil }
	log, markers := newMemLog(), &memMarkers{mode: "ok"}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no persister", Config{Markers: markers, ProducerIDs: pids}},
		{"no markers", Config{Persister: log, ProducerIDs: pids}},
		{"no producer ids", Config{Persister: log, Markers: markers}},
		{"too many partitions", Config{Persister: log, Markers: markers, ProducerIDs: pids, NumPartitions: 1 << 20}},
	} {
		if _, err := New(tc.cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err %v, want ErrInvalidConfig", tc.name, err)
		}
	}
	c, err := New(Config{Persister: log, Markers: markers, ProducerIDs: pids})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.NumPartitions != DefaultNumPartitions || c.cfg.MaxTimeout != DefaultMaxTimeout ||
		c.cfg.OffsetsPartitions != DefaultOffsetsPartitions || c.Owns(0) {
		t.Fatalf("defaults: %+v", c.cfg)
	}
	c.Close()
	c.Close()
}
