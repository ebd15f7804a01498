package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// shareLockMillis is the acquisition lock the share tests give their groups
// (share.record.lock.duration.ms): Kafka's smallest allowed minimum
// (group.share.min.record.lock.duration.ms is at least 1000), so that a
// lock expiry costs the tests a second.
const shareLockMillis = 1000

// shareBrokerSettings are the broker settings of the share tests: the
// minimum lock duration lowered so that groups may use shareLockMillis, and
// the share-state topic sized for one broker (Kafka's defaults, replication
// factor 3 and min.insync.replicas 2, need three).
func shareBrokerSettings() map[string]string {
	return map[string]string{
		"group.share.min.record.lock.duration.ms":          "1000",
		"share.coordinator.state.topic.replication.factor": "1",
		"share.coordinator.state.topic.min.isr":            "1",
		"share.coordinator.state.topic.num.partitions":     "3",
	}
}

// shareProcFlags are shareBrokerSettings as flags of the sluice binary;
// replication is the share-state topic's replication factor.
func shareProcFlags(replication int) []string {
	var out []string
	for k, v := range shareBrokerSettings() {
		switch k {
		case "share.coordinator.state.topic.replication.factor":
			v = itoa(replication)
		case "share.coordinator.state.topic.min.isr":
			v = itoa(min(replication, 2))
		}
		out = append(out, "--set", k+"="+v)
	}
	return out
}

// shareGroupConfigs sets configs of group (the GROUP config resource,
// KIP-848/KIP-932) with IncrementalAlterConfigs and waits until
// DescribeConfigs shows them, as franz-go's own share tests do.
func shareGroupConfigs(t testing.TB, cl *kgo.Client, group string, kvs ...string) {
	t.Helper()
	if len(kvs)%2 != 0 {
		t.Fatal("shareGroupConfigs: odd number of arguments")
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = group
	want := map[string]string{}
	for i := 0; i < len(kvs); i += 2 {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op, c.Value = kvs[i], kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(kvs[i+1])
		res.Configs = append(res.Configs, c)
		want[kvs[i]] = kvs[i+1]
	}
	req.Resources = append(req.Resources, res)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("IncrementalAlterConfigs of group %s: %v", group, err)
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("IncrementalAlterConfigs of group %s %v: %v (%v)", group, kvs, err, deref(r.ErrorMessage))
		}
	}
	waitFor(t, 15*time.Second, func() error {
		dreq := kmsg.NewPtrDescribeConfigsRequest()
		dres := kmsg.NewDescribeConfigsRequestResource()
		dres.ResourceType = kmsg.ConfigResourceTypeGroupConfig
		dres.ResourceName = group
		dreq.Resources = append(dreq.Resources, dres)
		dresp, err := dreq.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		got := map[string]string{}
		for _, r := range dresp.Resources {
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
				return err
			}
			for _, c := range r.Configs {
				got[c.Name] = deref(c.Value)
			}
		}
		for k, v := range want {
			if got[k] != v {
				return fmt.Errorf("group %s: %s is %q, want %q", group, k, got[k], v)
			}
		}
		return nil
	})
}

// shareGroupDefaults sets the configs every share test group uses: reading
// from the start of the log and the short acquisition lock; extra are
// more key/value pairs.
func shareGroupDefaults(t testing.TB, cl *kgo.Client, group string, extra ...string) {
	t.Helper()
	shareGroupConfigs(t, cl, group, append([]string{
		"share.auto.offset.reset", "earliest",
		"share.record.lock.duration.ms", itoa(shareLockMillis),
	}, extra...)...)
}

// produceEach produces values to partition 0 of topic one at a time, so
// that every record is its own batch (a share fetch acquires whole
// batches), and returns their offsets by value.
func produceEach(t testing.TB, cl *kgo.Client, topic string, values ...string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]int64{}
	for _, v := range values {
		r := &kgo.Record{Topic: topic, Value: []byte(v)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %q to %s: %v", v, topic, err)
		}
		out[v] = r.Offset
	}
	return out
}

// seqValues returns n values "<prefix>-<i>".
func seqValues(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// shareClient returns a franz-go share-group consumer of topics in group,
// closed at cleanup.
func shareClient(t testing.TB, seeds []string, group string, topics []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ShareGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchMaxWait(250 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// pollShare polls cl for at most wait and returns the records; fetch
// errors other than the poll's own deadline are logged (a failover makes
// some) and returned.
func pollShare(t testing.TB, cl *kgo.Client, wait time.Duration) ([]*kgo.Record, []error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	fs := cl.PollFetches(ctx)
	var errs []error
	for _, e := range fs.Errors() {
		if errors.Is(e.Err, context.DeadlineExceeded) || errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, kgo.ErrClientClosed) {
			continue
		}
		errs = append(errs, fmt.Errorf("%s/%d: %w", e.Topic, e.Partition, e.Err))
	}
	return fs.Records(), errs
}

// shareStartOffset returns the share-partition start offset of group on
// partition p of topic, from DescribeShareGroupOffsets (-1 when the group
// has no state for it).
func shareStartOffset(ctx context.Context, adm *kadm.Client, group, topic string, p int32) (int64, error) {
	ds, err := adm.DescribeShareGroupOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	d, ok := ds[group]
	if !ok {
		return 0, fmt.Errorf("group %s not in the DescribeShareGroupOffsets answer", group)
	}
	if d.Err != nil {
		return 0, d.Err
	}
	o, ok := d.Offsets.Lookup(topic, p)
	if !ok {
		return -1, nil
	}
	if o.Err != nil {
		return 0, o.Err
	}
	return o.StartOffset, nil
}

// waitShareStartOffset waits until the group's start offset on topic/p is want.
func waitShareStartOffset(t testing.TB, adm *kadm.Client, group, topic string, p int32, want int64, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := shareStartOffset(ctx, adm, group, topic, p)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("share-partition start offset of %s on %s/%d is %d, want %d", group, topic, p, got, want)
		}
		return nil
	})
}

// cutDialer makes the connections of a franz-go client killable and
// freezable from the test, to play a consumer process that hangs (its
// sockets stay open but nothing moves) and then dies (the kernel closes
// its sockets).
type cutDialer struct {
	mu     sync.Mutex
	conns  []*cutConn
	frozen bool
	dead   bool
	thaw   chan struct{} // closed when the dialer dies
}

func newCutDialer() *cutDialer { return &cutDialer{thaw: make(chan struct{})} }

// DialContext is a kgo.Dialer.
func (d *cutDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	blocked := d.frozen || d.dead
	d.mu.Unlock()
	if blocked {
		return nil, errors.New("cutDialer: the process is gone")
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cc := &cutConn{Conn: c, d: d}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		c.Close()
		return nil, errors.New("cutDialer: the process is gone")
	}
	d.conns = append(d.conns, cc)
	return cc, nil
}

// freeze stops every byte in either direction on the client's connections
// without closing them, and refuses new ones.
func (d *cutDialer) freeze() {
	d.mu.Lock()
	d.frozen = true
	d.mu.Unlock()
}

// kill closes the client's sockets as the kernel does for a killed process.
func (d *cutDialer) kill() {
	d.mu.Lock()
	if d.dead {
		d.mu.Unlock()
		return
	}
	d.dead = true
	conns := d.conns
	d.mu.Unlock()
	close(d.thaw)
	for _, c := range conns {
		c.Conn.Close()
	}
}

func (d *cutDialer) blocked() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.frozen || d.dead
}

type cutConn struct {
	net.Conn
	d *cutDialer
}

// wait blocks a frozen connection until the dialer dies, and reports
// whether the connection may be used.
func (c *cutConn) wait() error {
	if !c.d.blocked() {
		return nil
	}
	<-c.d.thaw
	return net.ErrClosed
}

func (c *cutConn) Read(p []byte) (int, error) {
	if err := c.wait(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if c.d.blocked() {
		// Frozen while the read was in flight: the bytes never reach
		// the hung process.
		<-c.d.thaw
		return 0, net.ErrClosed
	}
	return n, err
}

func (c *cutConn) Write(p []byte) (int, error) {
	if err := c.wait(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// Close closes the socket unless the process hangs: a hung process closes
// nothing; its sockets close when it dies.
func (c *cutConn) Close() error {
	if c.d.blocked() {
		return nil
	}
	return c.Conn.Close()
}

// hungShareClient is shareClient for a member the test freezes and kills:
// it is closed in the background at cleanup (a client whose broker is
// gone may take a while to give up leaving its group).
func hungShareClient(t testing.TB, seeds []string, group string, topics []string, d *cutDialer, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ShareGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchMaxWait(250 * time.Millisecond),
		kgo.Dialer(d.DialContext), kgo.RequestRetries(1), kgo.RetryTimeout(2 * time.Second),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.kill()
		go cl.Close()
	})
	return cl
}
