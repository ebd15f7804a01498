package group

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestGroupImportRules keeps the package pure: the standard library, kmsg,
// kerr and the dependency-free internal/uniq only (docs: coordinator ->
// kmsg/kerr; never storage, metadata, protocol, broker or etcd).
func TestGroupImportRules(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	allowed := []string{
		"github.com/sluicedev/sluice/coordinator",
		"github.com/twmb/franz-go/pkg/kmsg",
		"github.com/twmb/franz-go/pkg/kerr",
		"github.com/sluicedev/sluice/internal/uniq",
	}
	for _, dep := range strings.Fields(string(out)) {
		ok := false
		for _, a := range allowed {
			ok = ok || dep == a || strings.HasPrefix(dep, a+"/")
		}
		if !ok {
			t.Errorf("coordinator depends on %s", dep)
		}
	}
}

func TestGroupNewConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no persister", Config{}},
		{"inverted session bounds", Config{Persister: newMemPersister(), MinSessionTimeout: 10, MaxSessionTimeout: 5}},
		{"unknown assignor", Config{Persister: newMemPersister(), ConsumerAssignors: []string{"sticky"}}},
		{"too many partitions", Config{Persister: newMemPersister(), NumPartitions: 1 << 20}},
	} {
		if _, err := New(tc.cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err %v, want ErrInvalidConfig", tc.name, err)
		}
	}
	c, err := New(Config{Persister: newMemPersister(), Clock: newFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.NumPartitions != DefaultNumPartitions || c.cfg.ConsumerAssignors[0] != AssignorUniform || c.Owns(0) {
		t.Fatalf("defaults: %+v", c.cfg)
	}
	c.Close()
	c.Close()
}
