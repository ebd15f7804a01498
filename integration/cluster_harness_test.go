package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/metadata/etcdtest"
	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage"
)

// cluster is a set of sluice broker processes sharing one external etcd
// (Debian's etcd-server, started by the harness), for replication and
// failover tests that kill brokers with SIGKILL.
type cluster struct {
	t      testing.TB
	etcd   []string
	server *etcdtest.External
	procs  map[int32]*proc
}

// clusterSettings shorten the timeouts the failover tests wait for:
// a dead broker's lease expires after 3 s instead of 9 s.
var clusterSettings = []string{
	"--set", "broker.session.timeout.ms=3000",
	"--set", "replica.fetch.backoff.ms=200",
	"--set", "num.partitions=3",
	"--set", "default.replication.factor=3",
	"--set", "offsets.topic.num.partitions=6",
	"--set", "group.initial.rebalance.delay.ms=0",
}

// startCluster starts n brokers (node ids 1..n) on one etcd and waits
// until each sees all of them.
func startCluster(t testing.TB, n int, extra ...string) *cluster {
	t.Helper()
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(i + 1)
	}
	return startClusterIDs(t, ids, extra...)
}

// startClusterIDs starts one broker per node id on one etcd and waits
// until each sees all of them.
func startClusterIDs(t testing.TB, ids []int32, extra ...string) *cluster {
	t.Helper()
	n := len(ids)
	srv := etcdtest.StartExternalServer(t)
	c := &cluster{t: t, etcd: srv.Endpoints(), server: srv, procs: map[int32]*proc{}}
	for _, id := range ids {
		args := append([]string{"--node-id", strconv.Itoa(int(id)), "--etcd", strings.Join(c.etcd, ","),
			"--rack", "rack-" + strconv.Itoa(int(id))}, clusterSettings...)
		c.procs[id] = startProc(t, append(args, extra...)...)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, id := range c.ids() {
			out := c.procs[id].output()
			lines := strings.Split(out, "\n")
			if len(lines) > 80 {
				lines = lines[len(lines)-80:]
			}
			t.Logf("broker %d output (last lines):\n%s", id, strings.Join(lines, "\n"))
		}
	})
	c.waitBrokers(n)
	return c
}

// addrs lists the Kafka addresses of the brokers, running or not.
func (c *cluster) addrs() []string {
	var out []string
	for _, id := range c.ids() {
		out = append(out, c.procs[id].addr)
	}
	return out
}

func (c *cluster) ids() []int32 {
	ids := make([]int32, 0, len(c.procs))
	for id := range c.procs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// client returns a franz-go client seeded with every broker.
func (c *cluster) client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.addrs()...)}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

func (c *cluster) admin() *kadm.Client { return kadm.NewClient(c.client()) }

// waitBrokers waits until every broker's Metadata lists n brokers: a
// request sent to the controller right after another broker's Metadata
// listed everyone may otherwise find the controller not yet knowing the
// newest broker (CreateTopics: INVALID_REPLICATION_FACTOR).
func (c *cluster) waitBrokers(n int) {
	c.t.Helper()
	cl := c.client()
	waitFor(c.t, 30*time.Second, func() error {
		for _, id := range c.ids() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := cl.Broker(int(id)).Request(ctx, kmsg.NewPtrMetadataRequest())
			cancel()
			if err != nil {
				return fmt.Errorf("broker %d: %w", id, err)
			}
			if got := len(resp.(*kmsg.MetadataResponse).Brokers); got != n {
				return fmt.Errorf("broker %d's metadata lists %d brokers, want %d", id, got, n)
			}
		}
		return nil
	})
}

// createTopic creates topic with partitions and replication factor rf.
func (c *cluster) createTopic(topic string, partitions int32, rf int16, configs map[string]*string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.admin().CreateTopic(ctx, partitions, rf, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		c.t.Fatalf("create topic %s: %v", topic, err)
	}
	c.waitISR(topic, int(rf), 30*time.Second)
}

// partitionView is one partition as Metadata describes it.
type partitionView struct {
	Leader   int32
	Epoch    int32
	Replicas []int32
	ISR      []int32
	Offline  []int32
}

// metadata describes topic's partitions through any running broker.
func (c *cluster) metadata(topic string) (map[int32]partitionView, error) {
	var lastErr error
	for _, id := range c.ids() {
		p := c.procs[id]
		if !p.running() {
			continue
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr))
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		md, err := kadm.NewClient(cl).Metadata(ctx, topic)
		cancel()
		cl.Close()
		if err != nil {
			lastErr = err
			continue
		}
		d, ok := md.Topics[topic]
		if !ok || d.Err != nil {
			lastErr = fmt.Errorf("topic %s: %v", topic, d.Err)
			continue
		}
		out := map[int32]partitionView{}
		for _, pd := range d.Partitions {
			isr := slices.Clone(pd.ISR)
			sort.Slice(isr, func(i, j int) bool { return isr[i] < isr[j] })
			out[pd.Partition] = partitionView{Leader: pd.Leader, Epoch: pd.LeaderEpoch, Replicas: pd.Replicas, ISR: isr, Offline: pd.OfflineReplicas}
		}
		return out, nil
	}
	return nil, fmt.Errorf("no running broker answered: %v", lastErr)
}

// waitISR waits until every partition of topic has a live leader and an
// ISR of size n.
func (c *cluster) waitISR(topic string, n int, timeout time.Duration) map[int32]partitionView {
	c.t.Helper()
	var view map[int32]partitionView
	waitFor(c.t, timeout, func() error {
		v, err := c.metadata(topic)
		if err != nil {
			return err
		}
		for p, pv := range v {
			if pv.Leader < 0 || len(pv.ISR) != n {
				return fmt.Errorf("partition %d: leader %d isr %v, want an isr of %d", p, pv.Leader, pv.ISR, n)
			}
		}
		view = v
		return nil
	})
	return view
}

// waitLeader waits until partition p of topic is led by a running broker
// other than not, and returns it.
func (c *cluster) waitLeader(topic string, p, not int32, timeout time.Duration) partitionView {
	c.t.Helper()
	var out partitionView
	waitFor(c.t, timeout, func() error {
		v, err := c.metadata(topic)
		if err != nil {
			return err
		}
		pv := v[p]
		if pv.Leader < 0 || pv.Leader == not || !c.procs[pv.Leader].running() {
			return fmt.Errorf("partition %d: leader %d", p, pv.Leader)
		}
		out = pv
		return nil
	})
	return out
}

// acked is the history of a producer: every record acknowledged, by
// partition, with its offset.
type acked struct {
	mu     sync.Mutex
	byPart map[int32]map[string]int64 // value -> offset
	errs   []error
}

func newAcked() *acked { return &acked{byPart: map[int32]map[string]int64{}} }

func (a *acked) add(r *kgo.Record, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.errs = append(a.errs, err)
		return
	}
	m := a.byPart[r.Partition]
	if m == nil {
		m = map[string]int64{}
		a.byPart[r.Partition] = m
	}
	m[string(r.Value)] = r.Offset
}

func (a *acked) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, m := range a.byPart {
		n += len(m)
	}
	return n
}

// consumePartition reads partition p of topic from the start up to its
// high watermark through the cluster's current leaders.
func (c *cluster) consumePartition(topic string, p int32) []*kgo.Record {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := c.admin()
	var end int64
	waitFor(c.t, 30*time.Second, func() error {
		offs, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return err
		}
		o, ok := offs.Lookup(topic, p)
		if !ok || o.Err != nil {
			return fmt.Errorf("end offset of %d: %v", p, o.Err)
		}
		end = o.Offset
		return nil
	})
	cl := c.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}))
	var out []*kgo.Record
	for int64(len(out)) < end || (len(out) > 0 && out[len(out)-1].Offset+1 < end) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			c.t.Fatalf("consuming %s/%d: got %d records, end offset %d: %v", topic, p, len(out), end, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
		if len(out) > 0 && out[len(out)-1].Offset+1 >= end {
			break
		}
	}
	return out
}

// checkHistory asserts that every acknowledged record of a partition is in
// recs exactly once, at its acknowledged offset, and that recs (values
// "<partition>-<sequence>") are in producing order without duplicates.
func checkHistory(t testing.TB, p int32, want map[string]int64, recs []*kgo.Record) {
	t.Helper()
	seen := map[string]int64{}
	last := -1
	for _, r := range recs {
		v := string(r.Value)
		if o, dup := seen[v]; dup {
			t.Errorf("partition %d: %q at offsets %d and %d", p, v, o, r.Offset)
		}
		seen[v] = r.Offset
		seq, err := strconv.Atoi(v[strings.IndexByte(v, '-')+1:])
		if err != nil {
			t.Fatalf("partition %d: unexpected value %q", p, v)
		}
		if seq <= last {
			t.Errorf("partition %d: sequence %d after %d (offset %d)", p, seq, last, r.Offset)
		}
		last = seq
	}
	for v, off := range want {
		got, ok := seen[v]
		switch {
		case !ok:
			t.Errorf("partition %d: acknowledged %q (offset %d) is missing", p, v, off)
		case got != off:
			t.Errorf("partition %d: acknowledged %q at offset %d, found at %d", p, v, off, got)
		}
	}
}

// replicaRecords reads a stopped broker's copy of a partition straight
// from its segment files: "offset:value" for every record.
func replicaRecords(t testing.TB, dataDir, topic string, p int32) []string {
	t.Helper()
	l, err := storage.Open(filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, p)), storage.Options{})
	if err != nil {
		t.Fatalf("open replica log: %v", err)
	}
	defer l.Close()
	codecs := protocol.NewCodecs()
	var out []string
	for off := l.LogStartOffset(); off < l.LogEndOffset(); {
		data, err := l.Read(off, 1<<20, l.LogEndOffset())
		if err != nil || len(data) == 0 {
			t.Fatalf("read replica log at %d: %v", off, err)
		}
		for len(data) > 0 {
			one, rest, err := batch.Next(data)
			if err != nil {
				t.Fatalf("replica log at %d: %v", off, err)
			}
			data = rest
			h, recs, err := protocol.DecodeRecords(one, codecs, 64<<20)
			if err != nil {
				t.Fatalf("decode replica batch at %d: %v", off, err)
			}
			for _, r := range recs {
				out = append(out, fmt.Sprintf("%d:%s", h.FirstOffset+int64(r.OffsetDelta), r.Value))
			}
			off = h.FirstOffset + int64(h.LastOffsetDelta) + 1
		}
	}
	return out
}

// metric returns the value of an unlabelled series from the broker's
// /metrics page, or -1 when it is absent.
func (p *proc) metric(t testing.TB, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", p.httpAddr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", p.httpAddr, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return f
		}
	}
	return -1
}

// logEndOffset scrapes sluice_log_end_offset of topic-partition from the
// broker's /metrics page; ok is false when the broker does not host it.
func (p *proc) logEndOffset(topic string, partition int32) (leo int64, ok bool, err error) {
	resp, err := http.Get("http://" + p.httpAddr + "/metrics")
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false, err
	}
	want := []string{`topic="` + topic + `"`, `partition="` + strconv.Itoa(int(partition)) + `"`}
	for _, line := range strings.Split(string(body), "\n") {
		rest, found := strings.CutPrefix(line, "sluice_log_end_offset{")
		if !found {
			continue
		}
		labels, val, found := strings.Cut(rest, "} ")
		ls := strings.Split(labels, ",")
		if !found || !slices.Contains(ls, want[0]) || !slices.Contains(ls, want[1]) {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		return int64(f), err == nil, err
	}
	return 0, false, nil
}

// waitReplicasCaughtUp waits until every running broker hosting a
// partition of topic reports the same log end offset for it, so that the
// replicas' files can be compared (instead of sleeping for the last
// follower fetches to land).
func (c *cluster) waitReplicasCaughtUp(topic string, partitions int32, replicas int, timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, func() error {
		for p := int32(0); p < partitions; p++ {
			leos := map[int32]int64{}
			for _, id := range c.ids() {
				pr := c.procs[id]
				if !pr.running() {
					continue
				}
				leo, ok, err := pr.logEndOffset(topic, p)
				if err != nil {
					return err
				}
				if ok {
					leos[id] = leo
				}
			}
			if len(leos) != replicas {
				return fmt.Errorf("%s-%d: hosted on %d running brokers, want %d", topic, p, len(leos), replicas)
			}
			var first int64 = -1
			for _, leo := range leos {
				if first >= 0 && leo != first {
					return fmt.Errorf("%s-%d: log end offsets differ: %v", topic, p, leos)
				}
				first = leo
			}
		}
		return nil
	})
}
