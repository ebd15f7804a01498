package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicedev/sluice/metadata/etcdtest"
)

// clusterPorts is how many consecutive loopback ports one scripts/cluster.sh
// cluster uses: three Kafka, three HTTP, etcd client and peer.
const clusterPorts = 8

// TestClusterScriptThreeBrokers runs scripts/cluster.sh (what `make cluster`
// runs) on private ports and a temp dir, once with the etcd binary and once
// with broker 1's embedded etcd: Metadata from every broker lists the three
// brokers with their racks, a three-partition topic spreads over them and
// carries records, a second start changes nothing, and stop leaves no
// process behind.
func TestClusterScriptThreeBrokers(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	script, err := filepath.Abs(filepath.Join("..", "scripts", "cluster.sh"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		etcd string // SLUICE_CLUSTER_ETCD
	}{
		{name: "external etcd", etcd: "external"},
		{name: "embedded etcd", etcd: "embedded"},
	}
	// One block for all cases, so parallel cases cannot pick overlapping ports.
	base := freePortBlock(t, clusterPorts*len(tests))
	for i, tc := range tests {
		ports := base + i*clusterPorts
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.etcd == "external" {
				if _, err := exec.LookPath("etcd"); err != nil {
					if os.Getenv(etcdtest.RequireExternalEnv) == "1" {
						t.Fatalf("no etcd binary on PATH, but %s=1 requires it", etcdtest.RequireExternalEnv)
					}
					t.Skip("no etcd binary on PATH (Debian: apt-get install etcd-server)")
				}
			}
			c := newScriptCluster(t, script, tc.etcd, ports)
			c.checkStartStop(t)
		})
	}
}

// scriptCluster drives scripts/cluster.sh for one test.
type scriptCluster struct {
	script string
	dir    string
	env    []string
	addrs  []string // Kafka listeners of brokers 1-3
	// members are the pid file names the script writes: brokers, then etcd
	// when the script starts the etcd binary.
	members []string
}

func newScriptCluster(t *testing.T, script, etcdMode string, base int) *scriptCluster {
	c := &scriptCluster{script: script, dir: t.TempDir(), members: []string{"1", "2", "3"}}
	if etcdMode == "external" {
		c.members = append(c.members, "etcd")
	}
	for i := range 3 {
		c.addrs = append(c.addrs, "127.0.0.1:"+strconv.Itoa(base+i))
	}
	// Drop the caller's SLUICE_* variables: the script passes them on to
	// every broker, and this test wants the defaults.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			c.env = append(c.env, kv)
		}
	}
	c.env = append(c.env,
		"SLUICE_CLUSTER_DIR="+c.dir,
		"SLUICE_CLUSTER_BASE_PORT="+strconv.Itoa(base),
		"SLUICE_CLUSTER_HTTP_BASE_PORT="+strconv.Itoa(base+3),
		"SLUICE_CLUSTER_ETCD_PORT="+strconv.Itoa(base+6),
		"SLUICE_CLUSTER_ETCD="+etcdMode,
		"SLUICE_CLUSTER_BIN="+binPath,
		"SLUICE_CLUSTER_TIMEOUT=20",
	)
	// Registered before the start, so a failed start is cleaned up too.
	t.Cleanup(func() {
		if out, err := c.exec("stop"); err != nil {
			t.Errorf("cleanup: cluster.sh stop: %v\n%s", err, out)
		}
	})
	return c
}

// exec runs the script with one argument and returns its combined output.
func (c *scriptCluster) exec(arg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", c.script, arg)
	cmd.Env = c.env
	// The brokers it starts write to their own log files; should one keep
	// the output pipe open anyway, do not wait for it forever.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// run is exec that fails the test, with the members' logs, on an error.
func (c *scriptCluster) run(t *testing.T, arg string) string {
	t.Helper()
	out, err := c.exec(arg)
	if err != nil {
		t.Fatalf("cluster.sh %s: %v\n%s%s", arg, err, out, c.logs())
	}
	return out
}

// logs returns the tail of every member's log for failure messages.
func (c *scriptCluster) logs() string {
	var b strings.Builder
	for _, m := range c.members {
		data, err := os.ReadFile(filepath.Join(c.dir, m+".log"))
		if err != nil {
			continue
		}
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "\n--- %s.log (tail) ---\n%s", m, data)
	}
	return b.String()
}

// pids reads the pid file of every member.
func (c *scriptCluster) pids(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range c.members {
		data, err := os.ReadFile(filepath.Join(c.dir, m+".pid"))
		if err != nil {
			t.Fatalf("pid file of %s: %v", m, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			t.Fatalf("pid file of %s: %v", m, err)
		}
		out[m] = pid
	}
	return out
}

func (c *scriptCluster) checkStartStop(t *testing.T) {
	out := c.run(t, "start")
	if !strings.Contains(out, "kcat -b localhost:"+strings.TrimPrefix(c.addrs[0], "127.0.0.1:")) {
		t.Errorf("start output does not show the kcat command:\n%s", out)
	}
	pids := c.pids(t)
	for m, pid := range pids {
		if processGone(pid) {
			t.Fatalf("%s (pid %d) is not running after start%s", m, pid, c.logs())
		}
	}

	c.checkMetadata(t)
	c.checkProduceConsume(t)

	// A second start finds everything running and leaves it alone.
	out = c.run(t, "start")
	if !strings.Contains(out, "already running") {
		t.Errorf("second start did not report the running cluster:\n%s", out)
	}
	for m, pid := range c.pids(t) {
		if pid != pids[m] {
			t.Errorf("second start replaced %s: pid %d, was %d", m, pid, pids[m])
		}
	}

	out = c.run(t, "stop")
	if strings.Contains(out, "SIGKILL") {
		t.Errorf("a member ignored SIGTERM:\n%s%s", out, c.logs())
	}
	for m, pid := range pids {
		if !processGone(pid) {
			t.Errorf("%s (pid %d) still running after stop:\n%s", m, pid, out)
		}
		if _, err := os.Stat(filepath.Join(c.dir, m+".pid")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pid file of %s left after stop: %v", m, err)
		}
	}
	for _, addr := range c.addrs {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after stop", addr)
		}
	}
	// Stopping a stopped cluster is not an error.
	c.run(t, "stop")
}

// shortClient returns a franz-go client the caller closes before the
// cluster stops. (A client left connected, above all a consumer with a
// fetch in flight, holds a broker's shutdown for its drain timeout.)
func shortClient(t *testing.T, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// checkMetadata waits until every broker's Metadata lists all three
// brokers at their listeners with racks a, b and c.
func (c *scriptCluster) checkMetadata(t *testing.T) {
	t.Helper()
	want := []string{"1@" + c.addrs[0] + "/a", "2@" + c.addrs[1] + "/b", "3@" + c.addrs[2] + "/c"}
	for _, addr := range c.addrs {
		cl := shortClient(t, []string{addr})
		adm := kadm.NewClient(cl)
		waitFor(t, 15*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			md, err := adm.Metadata(ctx)
			if err != nil {
				return err
			}
			var got []string
			for _, b := range md.Brokers {
				rack := ""
				if b.Rack != nil {
					rack = *b.Rack
				}
				got = append(got, fmt.Sprintf("%d@%s/%s", b.NodeID, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))), rack))
			}
			sort.Strings(got)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				return fmt.Errorf("broker at %s lists %v, want %v", addr, got, want)
			}
			return nil
		})
		cl.Close()
	}
}

// checkProduceConsume creates a three-partition topic, checks that its
// partitions are led by three different brokers, and moves records through
// it, producing through one broker's bootstrap and consuming through another.
func (c *scriptCluster) checkProduceConsume(t *testing.T) {
	t.Helper()
	const topic, n = "cluster-script", 30
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	admCl := shortClient(t, []string{c.addrs[2]})
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	created, err := adm.CreateTopic(ctx, 3, 1, nil, topic)
	if err == nil {
		err = created.Err
	}
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	waitFor(t, 15*time.Second, func() error {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		d := md.Topics[topic]
		if d.Err != nil {
			return d.Err
		}
		leaders := map[int32]bool{}
		for _, p := range d.Partitions {
			if p.Err != nil {
				return fmt.Errorf("partition %d: %w", p.Partition, p.Err)
			}
			leaders[p.Leader] = true
		}
		if len(d.Partitions) != 3 || len(leaders) != 3 {
			return fmt.Errorf("want 3 partitions on 3 leaders, got %d partitions, leaders %v", len(d.Partitions), leaders)
		}
		return nil
	})

	prod := shortClient(t, c.addrs[:1], kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer prod.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Partition: int32(i % 3), Value: []byte(strconv.Itoa(i))}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	cons := shortClient(t, c.addrs[1:2], kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	defer cons.Close()
	perPartition := map[int32]int{}
	seen := map[string]bool{}
	for got := 0; got < n; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the timeout", got, n)
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Fatalf("fetch %s[%d]: %v", tp, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			perPartition[r.Partition]++
			seen[string(r.Value)] = true
			got++
		})
	}
	for p := range int32(3) {
		if perPartition[p] != n/3 {
			t.Errorf("partition %d: consumed %d records, want %d", p, perPartition[p], n/3)
		}
	}
	if len(seen) != n {
		t.Errorf("consumed %d distinct records, want %d", len(seen), n)
	}
}

// freePortBlock returns the first of n consecutive loopback ports that were
// all free when checked. It looks below Linux's ephemeral range, where
// freeAddr's ports (and outgoing connections) come from, so the script's
// ports do not collide with other tests'.
func freePortBlock(t testing.TB, n int) int {
	t.Helper()
	const lo, hi = 15000, 32000
	for range 50 {
		base := lo + rand.IntN(hi-lo-n)
		var lns []net.Listener
		for p := base; p < base+n; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if len(lns) == n {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports in [%d, %d)", n, lo, hi)
	return 0
}

// processGone reports whether pid no longer runs. A zombie counts as gone:
// the script's children are reparented when it exits, and a reaper that is
// not init may collect them late.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return false // no procfs: kill(2) found the process, zombie or not
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name, which may itself
	// contain spaces or parentheses.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z'
	}
	return false
}
