package lint

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/sluicedev/sluice"

// deps lists the packages (with their transitive imports) of pattern.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg)
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	var list []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		list = append(list, sc.Text())
	}
	return list
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "..", "..")
}

// rule forbids pkg (and its transitive imports) from reaching any package
// in forbidden. An entry matches itself and, unless it ends in "!", every
// package below it.
type rule struct {
	pkg       string
	forbidden []string
}

func matches(dep, entry string) bool {
	if exact, ok := strings.CutSuffix(entry, "!"); ok {
		return dep == exact
	}
	return dep == entry || strings.HasPrefix(dep, entry+"/")
}

// TestLintImportArrows enforces the dependency direction of the layout:
// lower layers never reach up, and only metadata talks to etcd.
func TestLintImportArrows(t *testing.T) {
	t.Parallel()
	rules := []rule{
		{"./protocol/batch", []string{module + "/protocol!", module + "/storage", module + "/metadata", module + "/broker",
			"github.com/twmb/franz-go/pkg/kmsg", "go.etcd.io", "github.com/prometheus/client_golang"}},
		{"./protocol", []string{module + "/storage", module + "/metadata", module + "/broker", "go.etcd.io", "github.com/prometheus/client_golang"}},
		{"./storage/...", []string{module + "/protocol!", module + "/metadata", module + "/broker",
			"github.com/twmb/franz-go/pkg/kmsg", "go.etcd.io", "github.com/prometheus/client_golang"}},
		{"./metadata/...", []string{module + "/broker", module + "/storage", module + "/protocol"}},
		{"./replication/...", []string{module + "/broker", module + "/storage", module + "/metadata", module + "/protocol",
			module + "/coordinator", "go.etcd.io", "github.com/prometheus/client_golang"}},
		{"./broker/quota", []string{module + "/broker!", module + "/storage", module + "/metadata", module + "/protocol",
			module + "/replication", module + "/coordinator", "github.com/twmb/franz-go", "go.etcd.io", "github.com/prometheus/client_golang"}},
		{"./internal/uniq", []string{module + "/broker", module + "/storage", module + "/metadata", module + "/protocol",
			module + "/replication", module + "/coordinator", "github.com/twmb/franz-go", "go.etcd.io", "github.com/prometheus/client_golang"}},
		{"./coordinator/...", []string{module + "/broker", module + "/storage", module + "/metadata", module + "/protocol",
			"go.etcd.io", "github.com/prometheus/client_golang"}},
		// dlq is a Kafka client (redrive, inspection) shared by the sluice
		// command and the broker's admin endpoints: it knows nothing of
		// the broker's insides.
		{"./dlq", []string{module + "/broker", module + "/storage", module + "/metadata", module + "/protocol",
			module + "/replication", module + "/coordinator", "go.etcd.io", "github.com/prometheus/client_golang"}},
	}
	for _, r := range rules {
		for _, d := range deps(t, r.pkg) {
			for _, f := range r.forbidden {
				if matches(d, f) {
					t.Errorf("%s must not depend on %s", r.pkg, d)
				}
			}
		}
	}
}

// TestLintEtcdOnlyInMetadata checks that no package but metadata imports the
// etcd client directly.
func TestLintEtcdOnlyInMetadata(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], module+"/metadata") {
			continue
		}
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, "go.etcd.io/") {
				t.Errorf("%s imports %s; only metadata may", fields[0], imp)
			}
		}
	}
}
