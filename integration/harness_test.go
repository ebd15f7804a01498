package integration

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicedev/sluice/broker"
)

// binPath is the sluice binary built once by TestMain for process tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-it-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", binPath, "../cmd/sluice")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr reserves a loopback port and releases it for the caller to bind.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// inproc is a broker running inside the test process.
type inproc struct {
	t      testing.TB
	b      *broker.Broker
	cancel context.CancelFunc
	done   chan error
	cfg    broker.Config
	once   sync.Once
}

// startBroker runs an in-process broker with an embedded etcd on random
// loopback ports, stopped at cleanup.
func startBroker(t testing.TB, settings map[string]string) *inproc {
	t.Helper()
	cfg := broker.Config{
		NodeID:                 1,
		Listen:                 "127.0.0.1:0",
		DataDir:                t.TempDir(),
		HTTPListen:             "127.0.0.1:0",
		EmbeddedEtcdClientAddr: "127.0.0.1:0",
		EmbeddedEtcdPeerAddr:   "127.0.0.1:0",
		Settings:               settings,
		Logger:                 testLogger(t),
	}
	return startBrokerConfig(t, cfg)
}

func startBrokerConfig(t testing.TB, cfg broker.Config) *inproc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := broker.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("start broker: %v", err)
	}
	ib := &inproc{t: t, b: b, cancel: cancel, done: make(chan error, 1), cfg: cfg}
	go func() { ib.done <- b.Run(ctx) }()
	t.Cleanup(ib.stop)
	return ib
}

// stop shuts the broker down gracefully; it is idempotent.
func (ib *inproc) stop() {
	ib.once.Do(func() {
		ib.cancel()
		select {
		case err := <-ib.done:
			if err != nil {
				ib.t.Errorf("broker Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			ib.t.Errorf("broker did not shut down within 30 s; goroutines:\n%s", stacks.String())
		}
	})
}

func (ib *inproc) addr() string { return ib.b.Addr() }

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// client returns a franz-go client for addr, closed at cleanup.
func client(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func admin(t testing.TB, addr string) *kadm.Client {
	return kadm.NewClient(client(t, addr))
}

// createTopic creates a topic and fails the test on any error.
func createTopic(t testing.TB, addr, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := admin(t, addr).CreateTopic(ctx, partitions, 1, configs, topic)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if resp.Err != nil {
		t.Fatalf("create topic %s: %v", topic, resp.Err)
	}
}

// waitFor polls fn until it returns nil or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("condition not met after %v: %v", timeout, err)
}

// proc is a sluice broker running as a separate process of the built binary.
type proc struct {
	t        testing.TB
	dataDir  string
	addr     string
	httpAddr string
	args     []string
	mu       sync.Mutex
	cmd      *exec.Cmd
	out      *lockedBuffer
	exited   chan error
}

// startProc starts the binary with its own data directory and embedded etcd
// on free loopback ports. extra are additional flags.
func startProc(t testing.TB, extra ...string) *proc {
	t.Helper()
	p := &proc{t: t, dataDir: t.TempDir()}
	t.Cleanup(func() { p.kill() })
	// The ports are picked by binding and releasing them, so a test running
	// in parallel can take one in between; a fresh set makes that harmless.
	for attempt := 0; ; attempt++ {
		p.addr, p.httpAddr = freeAddr(t), freeAddr(t)
		p.args = append([]string{
			"--data-dir", p.dataDir, "--listen", p.addr, "--http-listen", p.httpAddr,
			"--embedded-etcd-client-addr", freeAddr(t), "--embedded-etcd-peer-addr", freeAddr(t),
			"--log-level", "debug",
		}, extra...)
		err := p.tryStart()
		if err == nil {
			return p
		}
		if attempt == 2 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		p.kill()
	}
}

func (p *proc) start() {
	p.t.Helper()
	if err := p.tryStart(); err != nil {
		p.t.Fatal(err)
	}
}

// tryStart starts the process and waits until its Kafka listener accepts.
func (p *proc) tryStart() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(binPath, p.args...)
	p.out = &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sluice: %w", err)
	}
	p.cmd = cmd
	p.exited = make(chan error, 1)
	go func() { p.exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-p.exited:
			p.exited <- err
			return fmt.Errorf("sluice exited: %v\n%s", err, p.out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sluice not accepting on %s after 20s: %w", p.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

// stop sends SIGTERM and returns the exit error (nil for exit code 0).
func (p *proc) stop(timeout time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.cmd = nil
		return err
	case <-time.After(timeout):
		// SIGQUIT makes the Go runtime dump every goroutine into the
		// output, which says where shutdown hangs.
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
		}
		p.cmd = nil
		return fmt.Errorf("did not exit within %v after SIGTERM", timeout)
	}
}

func (p *proc) restart() { p.start() }

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// lockedBuffer is a bytes.Buffer safe for the writer goroutine os/exec
// starts and the test reading it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// requireTool returns the path of an external client, skipping the test when
// it is missing unless SLUICE_REQUIRE_CLIENTS is set (as CI sets it), in
// which case the test fails.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_CLIENTS") != "" {
			t.Fatalf("%s not found on PATH (install it: see .ci/run)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func itoa(n int) string { return strconv.Itoa(n) }

func fmtSscan(s string, n *int) (int, error) {
	v, err := strconv.Atoi(s)
	*n = v
	return 1, err
}

// runBinary runs sluice to completion (for start-up failures) and returns its output.
func runBinary(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
	return string(out), err
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// running reports whether the process was started and not yet killed or
// stopped by the test.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// signal sends sig to the running process (SIGSTOP / SIGCONT to freeze a
// broker without killing it).
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}
