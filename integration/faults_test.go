package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// producer is an acks=all idempotent producer whose records carry values
// "x-<seq>", seq growing over every call, as checkHistory wants them.
type producer struct {
	c   *cluster
	cl  *kgo.Client
	seq int
}

func (c *cluster) newProducer(topic string, opts ...kgo.Opt) *producer {
	return &producer{c: c, cl: c.client(append([]kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}, opts...)...)}
}

// produceAcked produces n records and returns what was acknowledged,
// failing the test on any error.
func (pr *producer) produceAcked(n int) *acked {
	pr.c.t.Helper()
	a := newAcked()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		pr.cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("x-%d", pr.seq))}, func(r *kgo.Record, err error) {
			defer wg.Done()
			a.add(r, err)
		})
		pr.seq++
	}
	wg.Wait()
	if len(a.errs) > 0 {
		pr.c.t.Fatalf("produce: %d errors, first %v", len(a.errs), a.errs[0])
	}
	return a
}

// produceAcked produces n records with a new producer.
func (c *cluster) produceAcked(topic string, n int, opts ...kgo.Opt) *acked {
	c.t.Helper()
	pr := c.newProducer(topic, opts...)
	defer pr.cl.Close()
	return pr.produceAcked(n)
}

// checkOnDisk asserts that a stopped broker's copy of topic holds every
// acknowledged record at its offset.
func checkOnDisk(t testing.TB, p *proc, topic string, a *acked) {
	t.Helper()
	for part, want := range a.byPart {
		got := replicaRecords(t, p.dataDir, topic, part)
		for v, off := range want {
			if !slices.Contains(got, fmt.Sprintf("%d:%s", off, v)) {
				t.Errorf("%s: partition %d lacks acknowledged %q at offset %d", p.dataDir, part, v, off)
			}
		}
	}
}

// TestFaultSIGTERMWithoutEtcd kills etcd under a running three-broker
// cluster and then sends SIGTERM to every broker, at once or once every
// broker has lost its lease and is trying to register again: each must
// exit within controlled.shutdown.timeout.ms plus a small bound, whatever
// etcd does, having logged its last line, with every acknowledged record
// in its partition logs.
func TestFaultSIGTERMWithoutEtcd(t *testing.T) {
	t.Parallel()
	for _, afterLeaseLost := range []bool{false, true} {
		t.Run(fmt.Sprintf("after_lease_lost=%v", afterLeaseLost), func(t *testing.T) {
			testSIGTERMWithoutEtcd(t, afterLeaseLost)
		})
	}
}

func testSIGTERMWithoutEtcd(t *testing.T, afterLeaseLost bool) {
	const shutdownTimeout = 3 * time.Second
	const bound = 6 * time.Second
	c := startCluster(t, 3, "--set", fmt.Sprintf("controlled.shutdown.timeout.ms=%d", shutdownTimeout.Milliseconds()))
	const topic = "sigterm"
	c.createTopic(topic, 3, 3, nil)
	a := c.produceAcked(topic, 300)
	c.server.Kill()
	if afterLeaseLost {
		waitFor(t, 30*time.Second, func() error {
			for _, id := range c.ids() {
				if !strings.Contains(c.procs[id].output(), "lost the etcd lease") {
					return fmt.Errorf("broker %d still holds its lease", id)
				}
			}
			return nil
		})
	}
	start := time.Now()
	errs := make(chan error, len(c.procs))
	for _, id := range c.ids() {
		p := c.procs[id]
		go func() {
			err := p.stop(shutdownTimeout + bound + 10*time.Second)
			took := time.Since(start)
			switch {
			case err != nil && took > shutdownTimeout+bound:
				errs <- fmt.Errorf("broker %d: %v after %v", id, err, took.Round(time.Millisecond))
			case took > shutdownTimeout+bound:
				errs <- fmt.Errorf("broker %d exited after %v, want within %v", id, took.Round(time.Millisecond), shutdownTimeout+bound)
			default:
				t.Logf("broker %d exited %v after SIGTERM without etcd (exit: %v)", id, took.Round(time.Millisecond), err)
				errs <- nil
			}
		}()
	}
	for range c.procs {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, id := range c.ids() {
		if out := c.procs[id].output(); !strings.Contains(out, "broker stopped") {
			t.Errorf("broker %d did not log its last line", id)
		}
	}
	for _, id := range c.ids() {
		checkOnDisk(t, c.procs[id], topic, a)
	}
}

// injectFault arms the test-only fault endpoint of a broker started with
// --test-fault-injection: every later matching storage call fails.
func injectFault(t testing.TB, p *proc, op, errno string) {
	t.Helper()
	resp, err := http.Post("http://"+p.httpAddr+"/debug/faults?op="+op+"&errno="+errno, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("arm fault %s/%s: %s", op, errno, resp.Status)
	}
}

// backgroundProducer produces "<n>-<seq>" records with acks=all from an
// idempotent producer until stopped, recording what was acknowledged.
type backgroundProducer struct {
	a    *acked
	stop func()
}

func (c *cluster) startProducer(topic string) *backgroundProducer {
	cl := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(time.Millisecond), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	a := newAcked()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for i := 0; ctx.Err() == nil; i++ {
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("v-%d", i))}, func(r *kgo.Record, err error) {
				defer wg.Done()
				if ctx.Err() != nil && err != nil {
					return // cut short by stop: not acknowledged, not an error
				}
				a.add(r, err)
			})
			if i%50 == 49 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		wg.Wait()
	}()
	return &backgroundProducer{a: a, stop: func() {
		// Let what is in flight be answered before cancelling the rest.
		fctx, fcancel := context.WithTimeout(context.Background(), 20*time.Second)
		_ = cl.Flush(fctx)
		fcancel()
		cancel()
		<-done
	}}
}

func (bp *backgroundProducer) waitAcked(t testing.TB, n int) {
	t.Helper()
	waitFor(t, 60*time.Second, func() error {
		if got := bp.a.count(); got < n {
			return fmt.Errorf("%d acknowledged, want %d", got, n)
		}
		return nil
	})
}

// TestFaultFsyncFailureMovesLeadership fails every fsync on the broker that
// leads partition 0 of an RF 3 topic while a producer runs: the broker
// takes its data directory offline (metric), gives up leadership and ISR
// membership of every partition, the others are elected, the producer goes
// on without an error, no acknowledged record is lost, and after a
// restart the broker rejoins every ISR.
func TestFaultFsyncFailureMovesLeadership(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, "--test-fault-injection")
	const topic = "logdir"
	c.createTopic(topic, 3, 3, nil)
	view := c.waitISR(topic, 3, 30*time.Second)
	victimID := view[0].Leader
	victim := c.procs[victimID]
	bp := c.startProducer(topic)
	bp.waitAcked(t, 500)
	if n := victim.metric(t, "sluice_offline_log_directory_count"); n != 0 {
		t.Fatalf("offline log directories before the fault: %v", n)
	}
	injectFault(t, victim, "sync", "EIO")
	failed := time.Now()
	waitFor(t, 20*time.Second, func() error {
		if n := victim.metric(t, "sluice_offline_log_directory_count"); n != 1 {
			return fmt.Errorf("broker %d reports %v offline log directories", victimID, n)
		}
		v, err := c.metadata(topic)
		if err != nil {
			return err
		}
		for p, pv := range v {
			if pv.Leader == victimID || pv.Leader < 0 || slices.Contains(pv.ISR, victimID) {
				return fmt.Errorf("partition %d: leader %d isr %v", p, pv.Leader, pv.ISR)
			}
		}
		return nil
	})
	t.Logf("leadership and ISR membership left broker %d %v after its fsync failed", victimID, time.Since(failed).Round(time.Millisecond))
	// DescribeLogDirs (kafka-log-dirs.sh, kadm) reports the directory
	// offline with KAFKA_STORAGE_ERROR.
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	dirs, err := kadm.NewClient(client(t, victim.addr)).DescribeBrokerLogDirs(dctx, victimID, nil)
	dcancel()
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range dirs {
		if !errors.Is(d.Err, kerr.KafkaStorageError) || len(d.Topics) != 0 {
			t.Errorf("broker %d log dir %s after the fault: err %v, %d topics; want KAFKA_STORAGE_ERROR", victimID, name, d.Err, len(d.Topics))
		}
	}
	if len(dirs) != 1 {
		t.Errorf("broker %d describes %d log dirs, want 1", victimID, len(dirs))
	}
	if code, err := doRequest(http.MethodGet, "http://"+victim.httpAddr+"/readyz"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("readyz of a broker with an offline log directory: %v %v, want 503", code, err)
	}
	before := bp.a.count()
	bp.waitAcked(t, before+500)
	bp.stop()
	if len(bp.a.errs) > 0 {
		t.Errorf("producer saw %d errors, first: %v", len(bp.a.errs), bp.a.errs[0])
	}
	for p := int32(0); p < 3; p++ {
		checkHistory(t, p, bp.a.byPart[p], c.consumePartition(topic, p))
	}
	victim.kill()
	victim.restart()
	c.waitISR(topic, 3, 60*time.Second)
	if n := victim.metric(t, "sluice_offline_log_directory_count"); n != 0 {
		t.Fatalf("offline log directories after the restart: %v", n)
	}
}

// TestFaultDiskFull makes a single broker's disk full (every write fails
// with ENOSPC) under a topic holding acknowledged records: produces answer
// KAFKA_STORAGE_ERROR, the broker keeps serving every acknowledged record
// to consumers, and after space is freed and a restart everything is there
// and produces work again.
func TestFaultDiskFull(t *testing.T) {
	t.Parallel()
	p := startProc(t, "--test-fault-injection")
	const topic = "full"
	createTopic(t, p.addr, topic, 1, nil)
	cl := client(t, p.addr, kgo.RequiredAcks(kgo.AllISRAcks()))
	const n = 200
	for i := range n {
		if r := produceRaw(t, cl, topic, buildBatch(-1, -1, 0, fmt.Sprintf("%08d", i))); r.ErrorCode != 0 || r.BaseOffset != int64(i) {
			t.Fatalf("produce %d: code %d offset %d", i, r.ErrorCode, r.BaseOffset)
		}
	}
	injectFault(t, p, "write", "ENOSPC")
	// Every produce from now on fails with KAFKA_STORAGE_ERROR, the first
	// because its write hits ENOSPC, the later ones because the directory
	// is offline.
	for i := range 3 {
		r := produceRaw(t, cl, topic, buildBatch(-1, -1, 0, "lost"))
		if r.ErrorCode != kerr.KafkaStorageError.Code {
			t.Fatalf("produce %d on a full disk: code %d, want KAFKA_STORAGE_ERROR", i, r.ErrorCode)
		}
	}
	if v := p.metric(t, "sluice_offline_log_directory_count"); v != 1 {
		t.Fatalf("offline log directories on a full disk: %v", v)
	}
	check := func(when string) {
		t.Helper()
		recs := consumeAtLeast(t, p.addr, topic, n)
		for i, r := range recs[:n] {
			if want := fmt.Sprintf("%08d", i); string(r.Value) != want || r.Offset != int64(i) {
				t.Fatalf("%s: record %d is %q at offset %d, want %q", when, i, r.Value, r.Offset, want)
			}
		}
	}
	check("on a full disk")
	// Space is freed; a restart reopens and recovers the log.
	resp, err := doRequest(http.MethodDelete, "http://"+p.httpAddr+"/debug/faults")
	if err != nil || resp != http.StatusOK {
		t.Fatalf("clear faults: %v %v", resp, err)
	}
	if err := p.stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM on a full disk: %v", err)
	}
	p.restart()
	cl2 := client(t, p.addr, kgo.RequiredAcks(kgo.AllISRAcks()))
	waitFor(t, 20*time.Second, func() error {
		r := produceRaw(t, cl2, topic, buildBatch(-1, -1, 0, fmt.Sprintf("%08d", n)))
		if r.ErrorCode != 0 {
			return fmt.Errorf("produce after restart: code %d", r.ErrorCode)
		}
		if r.BaseOffset != n {
			t.Fatalf("produce after restart at offset %d, want %d", r.BaseOffset, n)
		}
		return nil
	})
	check("after the restart")
	if v := p.metric(t, "sluice_offline_log_directory_count"); v != 0 {
		t.Fatalf("offline log directories after the restart: %v", v)
	}
}

func doRequest(method, url string) (int, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// alive reports whether a broker the test started is still running (it
// has not exited by itself).
func (p *proc) alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case err := <-p.exited:
		p.exited <- err
		return false
	default:
		return true
	}
}

// TestFaultEtcdOutageSurvived kills etcd under three brokers for longer
// than broker.session.timeout.ms (3 s here) and at least 10 s: every broker
// loses its lease and stays up, acks=all produces go on being acknowledged
// by the leaders elected before the outage (the ISR protocol, not the
// lease, keeps them safe), and once etcd is back the brokers register
// again with new epochs, every ISR is whole again, produce works within a
// bound, and no acknowledged record is lost.
func TestFaultEtcdOutageSurvived(t *testing.T) {
	t.Parallel()
	const outage = 10 * time.Second
	const recoveryBound = 20 * time.Second
	c := startCluster(t, 3)
	const topic = "outage"
	c.createTopic(topic, 3, 3, nil)
	before := c.waitISR(topic, 3, 30*time.Second)
	all := newAcked()
	merge := func(a *acked) {
		for p, m := range a.byPart {
			for v, off := range m {
				all.add(&kgo.Record{Partition: p, Value: []byte(v), Offset: off}, nil)
			}
		}
	}
	// One producer throughout: a new idempotent producer needs a producer id,
	// which a broker without a reserved block cannot give without etcd.
	pr := c.newProducer(topic, kgo.RecordDeliveryTimeout(15*time.Second))
	merge(pr.produceAcked(300))

	c.server.Kill()
	killed := time.Now()
	waitFor(t, 30*time.Second, func() error {
		for _, id := range c.ids() {
			if !strings.Contains(c.procs[id].output(), "lost the etcd lease") {
				return fmt.Errorf("broker %d still holds its lease", id)
			}
		}
		return nil
	})
	t.Logf("every broker lost its lease %v after etcd died", time.Since(killed).Round(time.Millisecond))
	// acks=all needs no lease: the leaders elected before the outage go on.
	merge(pr.produceAcked(30))
	waitFor(t, outage+5*time.Second, func() error {
		if d := time.Since(killed); d < outage {
			return fmt.Errorf("etcd down for %v of %v", d.Round(time.Second), outage)
		}
		return nil
	})
	for _, id := range c.ids() {
		if !c.procs[id].alive() {
			t.Fatalf("broker %d exited during the etcd outage", id)
		}
	}

	c.server.Restart(t)
	restarted := time.Now()
	waitFor(t, recoveryBound, func() error {
		for _, id := range c.ids() {
			if !strings.Contains(c.procs[id].output(), "registered again") {
				return fmt.Errorf("broker %d has not registered again", id)
			}
		}
		return nil
	})
	t.Logf("every broker registered again %v after etcd came back (down %v)",
		time.Since(restarted).Round(time.Millisecond), restarted.Sub(killed).Round(time.Millisecond))
	// The controller handles re-registered brokers as restarted ones: every
	// partition gets a new leader epoch, and the ISR fills up again.
	waitFor(t, recoveryBound, func() error {
		v, err := c.metadata(topic)
		if err != nil {
			return err
		}
		for p, pv := range v {
			if pv.Epoch <= before[p].Epoch || pv.Leader < 0 || len(pv.ISR) != 3 {
				return fmt.Errorf("partition %d: leader %d epoch %d (before the outage %d) isr %v", p, pv.Leader, pv.Epoch, before[p].Epoch, pv.ISR)
			}
		}
		return nil
	})
	cl := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(5*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	waitFor(t, recoveryBound, func() error {
		for p := int32(0); p < 3; p++ {
			r := &kgo.Record{Partition: p, Value: []byte(fmt.Sprintf("after-%d", p))}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				return fmt.Errorf("partition %d: %w", p, err)
			}
		}
		return nil
	})
	t.Logf("re-elected, ISRs whole and produce to every partition working %v after etcd came back",
		time.Since(restarted).Round(time.Millisecond))
	for _, id := range c.ids() {
		if !c.procs[id].alive() {
			t.Fatalf("broker %d exited", id)
		}
	}
	merge(pr.produceAcked(300))
	for p := int32(0); p < 3; p++ {
		recs := c.consumePartition(topic, p)
		var history []*kgo.Record
		for _, r := range recs {
			if strings.HasPrefix(string(r.Value), "x-") {
				history = append(history, r)
			}
		}
		checkHistory(t, p, all.byPart[p], history)
	}
}

// TestFaultPartitionOpenRetried makes the first opens of a new topic's
// logs fail: the topic is created, another topic is served meanwhile, and
// once the disk behaves the broker opens the missing logs by itself and
// produce to every partition works, without a restart.
func TestFaultPartitionOpenRetried(t *testing.T) {
	t.Parallel()
	p := startProc(t, "--test-fault-injection")
	createTopic(t, p.addr, "healthy", 1, nil)
	resp, err := http.Post("http://"+p.httpAddr+"/debug/faults?op=create&errno=EIO&match=/retried-", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	createTopic(t, p.addr, "retried", 3, nil)
	cl := client(t, p.addr, kgo.RequiredAcks(kgo.AllISRAcks()))
	if r := produceRaw(t, cl, "healthy", buildBatch(-1, -1, 0, "ok")); r.ErrorCode != 0 {
		t.Fatalf("produce to another topic while opens fail: code %d", r.ErrorCode)
	}
	if r := produceRaw(t, cl, "retried", buildBatch(-1, -1, 0, "early")); r.ErrorCode == 0 {
		t.Fatalf("produce to a partition whose log failed to open was acknowledged")
	}
	if code, err := doRequest(http.MethodDelete, "http://"+p.httpAddr+"/debug/faults"); err != nil || code != http.StatusOK {
		t.Fatalf("clear faults: %v %v", code, err)
	}
	pc := client(t, p.addr, kgo.DefaultProduceTopic("retried"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(3*time.Second))
	waitFor(t, 20*time.Second, func() error {
		for part := int32(0); part < 3; part++ {
			if err := pc.ProduceSync(context.Background(), &kgo.Record{Partition: part, Value: []byte("late")}).FirstErr(); err != nil {
				return fmt.Errorf("partition %d: %w", part, err)
			}
		}
		return nil
	})
	if !strings.Contains(p.output(), "opened partition logs that had failed to open") {
		t.Fatal("the broker did not report reopening the logs")
	}
}
