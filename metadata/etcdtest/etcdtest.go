// Package etcdtest starts etcd servers for tests: an embedded one in the
// test process (StartEmbedded) or the etcd binary as a child process
// (StartExternal). Both listen on loopback ports chosen at start, keep
// their data under t.TempDir() and are stopped by t.Cleanup.
//
// StartExternal looks for "etcd" on PATH (Debian: apt-get install
// etcd-server). Without it the test is skipped, unless the environment sets
// SLUICE_REQUIRE_EXTERNAL_ETCD=1 (as CI does), in which case it fails.
package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedev/sluice/metadata"
)

// RequireExternalEnv names the environment variable that turns a missing
// etcd binary from a skip into a failure.
const RequireExternalEnv = "SLUICE_REQUIRE_EXTERNAL_ETCD"

// startTimeout bounds how long a server may take to become ready.
const startTimeout = 20 * time.Second

// StartEmbedded starts an embedded etcd in a fresh temp dir and returns its
// client endpoints.
func StartEmbedded(t testing.TB) []string {
	t.Helper()
	return StartEmbeddedDir(t, filepath.Join(t.TempDir(), "etcd")).Endpoints()
}

// StartEmbeddedDir starts an embedded etcd on dir, so a test can close it
// and start it again on the same data. Cleanup closes it (Close is
// idempotent, so the test may close it earlier).
func StartEmbeddedDir(t testing.TB, dir string) *metadata.Embedded {
	t.Helper()
	log := testLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	e, err := metadata.StartEmbedded(ctx, metadata.EmbeddedConfig{
		Dir:        dir,
		ClientAddr: "127.0.0.1:0",
		PeerAddr:   "127.0.0.1:0",
		Logger:     log,
	})
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// testLogger sends etcd's warnings to the test log until the test's
// cleanups have run; it must be created before the server so that its
// cleanup runs after the server's Close.
func testLogger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// tWriter forwards to t.Log and drops writes once the test is over (a late
// write from a server goroutine would otherwise panic the test binary).
type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// StartExternal runs the etcd binary found on PATH as a single-member
// cluster and returns its client endpoints once it reports healthy.
func StartExternal(t testing.TB) []string {
	t.Helper()
	return StartExternalServer(t).Endpoints()
}

// External is an etcd child process started by StartExternalServer.
type External struct {
	Bin       string
	Version   string // first line of "etcd --version"
	endpoints []string
	args      []string
	logPath   string
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
}

// Endpoints returns the client URLs.
func (x *External) Endpoints() []string { return append([]string(nil), x.endpoints...) }

// Kill stops the process with SIGKILL and waits for it. Idempotent.
func (x *External) Kill() {
	x.mu.Lock()
	defer x.mu.Unlock()
	_ = x.cmd.Process.Kill()
	<-x.exited
}

// Restart starts a killed server again on the same data directory and
// ports, as an operator restarting etcd after an outage would, and waits
// until it reports healthy.
func (x *External) Restart(t testing.TB) {
	t.Helper()
	x.Kill()
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.startLocked(); err != nil {
		t.Fatalf("etcdtest: restart %s: %v", x.Bin, err)
	}
}

// startLocked starts the process and waits until it is healthy.
func (x *External) startLocked() error {
	logf, err := os.OpenFile(x.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command(x.Bin, x.args...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	x.cmd, x.exited = cmd, exited
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	if err := waitHealthy(x.endpoints[0], exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%w; log:\n%s", err, tail(x.logPath))
	}
	return nil
}

// StartExternalServer is StartExternal returning the process handle, for
// tests that kill etcd.
func StartExternalServer(t testing.TB) *External {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		msg := "etcdtest: no etcd binary on PATH (Debian: apt-get install -y etcd-server)"
		if os.Getenv(RequireExternalEnv) == "1" {
			t.Fatalf("%s, but %s=1 requires it", msg, RequireExternalEnv)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	var lastErr error
	// The ports are picked by binding and releasing them, so another process
	// can grab one in between; a couple of retries make that harmless.
	for attempt := range 3 {
		x, err := startExternal(bin, filepath.Join(dir, "attempt"+strconv.Itoa(attempt)))
		if err == nil {
			x.Version = binVersion(bin)
			t.Cleanup(x.Kill)
			return x
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("etcdtest: start %s: %v", bin, lastErr)
	return nil
}

func startExternal(bin, dir string) (*External, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	curl := "http://127.0.0.1:" + strconv.Itoa(cport)
	purl := "http://127.0.0.1:" + strconv.Itoa(pport)
	x := &External{Bin: bin, endpoints: []string{curl}, logPath: filepath.Join(dir, "etcd.log"), args: []string{
		"--name=sluice-test",
		"--data-dir=" + filepath.Join(dir, "data"),
		"--listen-client-urls=" + curl, "--advertise-client-urls=" + curl,
		"--listen-peer-urls=" + purl, "--initial-advertise-peer-urls=" + purl,
		"--initial-cluster=sluice-test=" + purl,
		"--logger=zap", "--log-outputs=stderr", "--log-level=warn",
	}}
	if err := x.startLocked(); err != nil {
		return nil, err
	}
	return x, nil
}

// cleanEnv drops ETCD_* variables, which the etcd binary would read as
// flags and which might contradict the ones given.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

func waitHealthy(curl string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("etcd exited during start-up")
		default:
		}
		resp, err := client.Get(curl + "/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"true"`)) {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("etcd not healthy after %v", startTimeout)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func binVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first)
}
