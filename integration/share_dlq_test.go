package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/dlq"
)

// dlqLetter is a dead-letter record to write by hand, shaped as the
// broker's DLQ writer writes them (KIP-1191 headers).
type dlqLetter struct {
	dlqPartition    int32
	source          string
	sourcePartition int32
	sourceOffset    int64
	rejected        bool
	key, value      []byte
	extra           []kgo.RecordHeader
}

func (l dlqLetter) record(topic string) *kgo.Record {
	msg := "Offset delivery count exceeded the threshold."
	if l.rejected {
		msg = "Offset rejected by client."
	}
	hs := []kgo.RecordHeader{
		{Key: dlq.HeaderTopic, Value: []byte(l.source)},
		{Key: dlq.HeaderPartition, Value: []byte(strconv.Itoa(int(l.sourcePartition)))},
		{Key: dlq.HeaderOffset, Value: []byte(strconv.FormatInt(l.sourceOffset, 10))},
		{Key: dlq.HeaderGroup, Value: []byte("workers")},
		{Key: dlq.HeaderDeliveryCount, Value: []byte("3")},
		{Key: dlq.HeaderMessage, Value: []byte(msg)},
	}
	return &kgo.Record{Topic: topic, Partition: l.dlqPartition, Key: l.key, Value: l.value, Headers: append(hs, l.extra...)}
}

// dlqWriteTopic creates dlqTopic (opted in as a DLQ) and the source topics,
// and writes letters.
func dlqWriteTopic(t *testing.T, addr, dlqTopic string, letters []dlqLetter, sources map[string]int32) {
	t.Helper()
	on := "true"
	createTopic(t, addr, dlqTopic, 2, map[string]*string{"errors.deadletterqueue.group.enable": &on})
	for s, n := range sources {
		createTopic(t, addr, s, n, nil)
	}
	cl := client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for _, l := range letters {
		recs = append(recs, l.record(dlqTopic))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce dead letters: %v", err)
	}
}

// dlqRedrivenIn reads topic read_committed from the start and returns the
// records that came from a redrive, keyed by their sluice.redrive.source.
func dlqRedrivenIn(t *testing.T, addr, topic string, want int) map[string][]*kgo.Record {
	t.Helper()
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got := map[string][]*kgo.Record{}
	n := 0
	deadline := time.Now().Add(20 * time.Second)
	// Read until want records arrived, then a little more to catch extras.
	var quietSince time.Time
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == dlq.HeaderRedriveSource {
					got[string(h.Value)] = append(got[string(h.Value)], r)
					n++
				}
			}
		})
		if n >= want {
			if quietSince.IsZero() {
				quietSince = time.Now()
			} else if time.Since(quietSince) > time.Second {
				break
			}
		}
	}
	return got
}

// TestShareDLQRedriveExactlyOnce moves dead letters back to their source
// topic in several runs, one stopped at --max, one aborted just before its
// commit, one cancelled, and checks that every selected record arrives
// exactly once, in its source partition, with its key, value and own
// headers, and nothing else moved.
func TestShareDLQRedriveExactlyOnce(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	addr := ib.addr()
	const topic = "dlq.workers"
	var letters []dlqLetter
	for i := range 24 {
		letters = append(letters, dlqLetter{
			dlqPartition: int32(i % 2), source: "orders", sourcePartition: int32(i % 3), sourceOffset: int64(100 + i),
			rejected: i%2 == 0, key: []byte("k" + strconv.Itoa(i)), value: []byte("v" + strconv.Itoa(i)),
			extra: []kgo.RecordHeader{{Key: "trace", Value: []byte("t" + strconv.Itoa(i))}},
		})
	}
	letters = append(letters,
		dlqLetter{source: "payments", sourcePartition: 0, value: []byte("other topic")},
		dlqLetter{source: "orders", sourcePartition: 1, sourceOffset: 500, rejected: true}, // a pointer to a record that is not there
		dlqLetter{source: "orders", sourcePartition: 9, value: []byte("no such partition")},
	)
	dlqWriteTopic(t, addr, topic, letters, map[string]int32{"orders": 3, "payments": 1})
	cfg := dlq.Config{Brokers: []string{addr}, Logger: testLogger(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	s, err := dlq.Inspect(ctx, cfg, topic, dlq.InspectOptions{Limit: 5})
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if s.Total != 27 || s.BySourceTopic["orders"] != 26 || s.BySourceTopic["payments"] != 1 || len(s.Records) != 5 ||
		!s.Truncated || s.WithoutCopy != 1 || s.ByReason[dlq.ReasonRejected] != 13 {
		t.Fatalf("inspect summary: %+v", s)
	}

	sel := dlq.Selection{SourceTopic: "orders"}
	// Run 1: stopped at max.
	r1, err := dlq.Redrive(ctx, cfg, topic, dlq.RedriveOptions{Selection: dlq.Selection{SourceTopic: "orders", Max: 5}})
	if err != nil || r1.Moved != 5 || r1.Done {
		t.Fatalf("run 1: %+v, %v", r1, err)
	}
	// Run 2: interrupted after producing, before committing.
	errStop := errors.New("interrupted")
	r2, err := dlq.Redrive(ctx, cfg, topic, dlq.RedriveOptions{Selection: dlq.Selection{SourceTopic: "orders", Max: 4},
		BeforeCommit: func(moved []dlq.Record) error {
			if len(moved) == 0 {
				return nil
			}
			return errStop
		}})
	if !errors.Is(err, errStop) || r2.Moved != 0 {
		t.Fatalf("run 2: %+v, %v; want the interruption and nothing moved", r2, err)
	}
	// Run 3: cancelled while it runs.
	cctx, ccancel := context.WithCancel(ctx)
	_, err = dlq.Redrive(cctx, cfg, topic, dlq.RedriveOptions{Selection: sel,
		BeforeCommit: func([]dlq.Record) error { ccancel(); return nil }})
	if err == nil {
		t.Log("run 3 committed before the cancellation took effect")
	}
	// Run 4: to the end.
	r4, err := dlq.Redrive(ctx, cfg, topic, dlq.RedriveOptions{Selection: sel})
	if err != nil || !r4.Done {
		t.Fatalf("run 4: %+v, %v", r4, err)
	}
	if r4.Unmovable != 2 {
		t.Errorf("run 4 unmovable %d, want 2 (a pointer to nothing, no such partition)", r4.Unmovable)
	}
	// Run 5: nothing left.
	r5, err := dlq.Redrive(ctx, cfg, topic, dlq.RedriveOptions{Selection: sel})
	if err != nil || r5.Moved != 0 || !r5.Done {
		t.Fatalf("run 5: %+v, %v", r5, err)
	}

	got := dlqRedrivenIn(t, addr, "orders", 24)
	if len(got) != 24 {
		t.Fatalf("%d distinct records redriven, want 24", len(got))
	}
	// DLQ offsets: letters alternate partitions 0 and 1 in order.
	next := map[int32]int64{}
	for i, l := range letters[:24] {
		src := fmt.Sprintf("%s/%d/%d", topic, l.dlqPartition, next[l.dlqPartition])
		next[l.dlqPartition]++
		rs := got[src]
		if len(rs) != 1 {
			t.Errorf("letter %d (%s) arrived %d times", i, src, len(rs))
			continue
		}
		r := rs[0]
		if r.Partition != l.sourcePartition || !bytes.Equal(r.Key, l.key) || !bytes.Equal(r.Value, l.value) {
			t.Errorf("letter %d arrived as partition %d %q=%q", i, r.Partition, r.Key, r.Value)
		}
		for _, h := range r.Headers {
			if strings.HasPrefix(h.Key, dlq.HeaderPrefix) {
				t.Errorf("letter %d kept header %s", i, h.Key)
			}
		}
		if len(r.Headers) != 2 || r.Headers[0].Key != "trace" {
			t.Errorf("letter %d headers %v", i, r.Headers)
		}
	}
	if p := dlqRedrivenIn(t, addr, "payments", 0); len(p) != 0 {
		t.Errorf("records of another source topic moved: %v", p)
	}
}

// TestShareDLQAdminHTTP: the inspect endpoint answers JSON, redrive is
// refused until admin.http.writes.enable, then moves the records.
func TestShareDLQAdminHTTP(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	addr := ib.addr()
	const topic = "dlq.http"
	dlqWriteTopic(t, addr, topic, []dlqLetter{
		{source: "jobs", sourcePartition: 0, rejected: true, value: []byte("a")},
		{dlqPartition: 1, source: "jobs", sourcePartition: 1, value: []byte("b")},
	}, map[string]int32{"jobs": 2})
	base := "http://" + ib.b.HTTPAddr()

	resp, err := http.Get(base + "/v1/dlq/inspect?topic=" + topic + "&reason=rejected")
	if err != nil {
		t.Fatal(err)
	}
	var s dlq.Summary
	err = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || s.Total != 1 || len(s.Records) != 1 || s.Records[0].SourcePartition != 0 {
		t.Fatalf("inspect: %d %+v %v", resp.StatusCode, s, err)
	}
	if code := dlqHTTPStatus(t, "GET", base+"/v1/dlq/inspect?topic=dlq.none", ""); code != http.StatusNotFound {
		t.Errorf("inspect of a missing topic: %d, want 404", code)
	}
	if code := dlqHTTPStatus(t, "GET", base+"/v1/dlq/inspect?topic="+topic+"&reason=bogus", ""); code != http.StatusBadRequest {
		t.Errorf("inspect with a bad reason: %d, want 400", code)
	}

	body := `{"topic":"` + topic + `","source_topic":"jobs"}`
	if code := dlqHTTPStatus(t, "POST", base+"/v1/dlq/redrive", body); code != http.StatusForbidden {
		t.Fatalf("redrive with writes disabled: %d, want 403", code)
	}
	on := "true"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin(t, addr).AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "admin.http.writes.enable", Value: &on}}); err != nil {
		t.Fatalf("enable writes: %v", err)
	}
	waitFor(t, 20*time.Second, func() error {
		if code := dlqHTTPStatus(t, "POST", base+"/v1/dlq/redrive", `{"topic":"`+topic+`","bogus":1}`); code == http.StatusForbidden {
			return errors.New("still refused")
		}
		return nil
	})
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/dlq/redrive", strings.NewReader(body))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res dlq.RedriveResult
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || res.Moved != 2 || !res.Done {
		t.Fatalf("redrive: %d %+v %v", resp.StatusCode, res, err)
	}
	if got := dlqRedrivenIn(t, addr, "jobs", 2); len(got) != 2 {
		t.Errorf("redriven records %v, want 2", got)
	}
}

func dlqHTTPStatus(t *testing.T, method, url, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestShareDLQRejectedRecordLandsOnceAndRedrives is the whole path with a
// franz-go share consumer: records a consumer rejects are written to the
// group's DLQ topic once each, with KIP-1191's headers and (copy enabled)
// the payload; a redrive puts them back in their source partition. It needs
// the share-group parts of the broker (membership, ShareFetch, share state).
func TestShareDLQRejectedRecordLandsOnceAndRedrives(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	addr := ib.addr()
	on := "true"
	createTopic(t, addr, "dlq.tasks", 1, map[string]*string{"errors.deadletterqueue.group.enable": &on})
	createTopic(t, addr, "tasks", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dlqSetGroupConfigs(ctx, t, addr, "taskers", map[string]string{
		"share.auto.offset.reset":                   "earliest",
		"errors.deadletterqueue.topic.name":         "dlq.tasks",
		"errors.deadletterqueue.copy.record.enable": "true",
	})
	prod := client(t, addr)
	for i := range 3 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "tasks", Value: []byte("task-" + strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons := client(t, addr, kgo.ShareGroup("taskers"), kgo.ConsumeTopics("tasks"))
	rejected := 0
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	for rejected < 3 && rctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(rctx, time.Second)
		fs := cons.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			r.Ack(kgo.AckReject)
			rejected++
		})
	}
	if rejected < 3 {
		t.Fatalf("the share consumer got %d records, want 3", rejected)
	}
	if err := cons.FlushAcks(ctx); err != nil {
		t.Fatalf("flush acks: %v", err)
	}
	cfg := dlq.Config{Brokers: []string{addr}}
	var s dlq.Summary
	waitFor(t, 30*time.Second, func() error {
		var err error
		if s, err = dlq.Inspect(ctx, cfg, "dlq.tasks", dlq.InspectOptions{}); err != nil {
			return err
		}
		if s.Total < 3 {
			return fmt.Errorf("%d dead letters", s.Total)
		}
		return nil
	})
	if s.Total != 3 || s.ByReason[dlq.ReasonRejected] != 3 {
		t.Fatalf("dead letters %+v, want 3 rejected", s)
	}
	for i, r := range s.Records {
		if r.SourceTopic != "tasks" || r.SourcePartition != 0 || r.SourceOffset != int64(i) || r.Group != "taskers" ||
			r.DeliveryCount != 1 || string(r.Value) != "task-"+strconv.Itoa(i) {
			t.Errorf("dead letter %d: %+v", i, r)
		}
	}
	res, err := dlq.Redrive(ctx, cfg, "dlq.tasks", dlq.RedriveOptions{})
	if err != nil || res.Moved != 3 {
		t.Fatalf("redrive: %+v, %v", res, err)
	}
	if got := dlqRedrivenIn(t, addr, "tasks", 3); len(got) != 3 {
		t.Errorf("redriven %d records, want 3", len(got))
	}
}

// dlqSetGroupConfigs sets GROUP resource configs (KIP-848/KIP-932 group configs).
func dlqSetGroupConfigs(ctx context.Context, t *testing.T, addr, group string, configs map[string]string) {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = group
	for k, v := range configs {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		res.Configs = append(res.Configs, c)
	}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, client(t, addr))
	if err != nil {
		t.Fatalf("alter group configs: %v", err)
	}
	for _, r := range resp.Resources {
		if r.ErrorCode != 0 {
			msg := ""
			if r.ErrorMessage != nil {
				msg = *r.ErrorMessage
			}
			t.Fatalf("alter group configs: error %d %s", r.ErrorCode, msg)
		}
	}
}

// TestShareDLQCommand runs "sluice dlq inspect|redrive" against a broker:
// JSON and table output, exit codes, and a rerun continuing a --max run.
func TestShareDLQCommand(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	addr := ib.addr()
	const topic = "dlq.cmd"
	dlqWriteTopic(t, addr, topic, []dlqLetter{
		{source: "mail", rejected: true, value: []byte("m0")},
		{source: "mail", value: []byte("m1")},
		{dlqPartition: 1, source: "mail", value: []byte("m2")},
	}, map[string]int32{"mail": 1})

	out, err := runBinary(t, "dlq", "inspect", "--brokers", addr, "--format", "json", "--reason", "delivery_limit", topic)
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	var s dlq.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Total != 2 || len(s.Records) != 2 {
		t.Fatalf("inspect json: %v %+v\n%s", err, s, out)
	}
	out, err = runBinary(t, "dlq", "inspect", "--brokers", addr, topic)
	if err != nil || !strings.Contains(out, "by reason") || !strings.Contains(out, "mail/0/0") {
		t.Fatalf("inspect table: %v\n%s", err, out)
	}
	out, err = runBinary(t, "dlq", "redrive", "--brokers", addr, "--format", "json", "--max", "2", topic)
	var r dlq.RedriveResult
	if err != nil || json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r) != nil || r.Moved != 2 || r.Done {
		t.Fatalf("redrive --max 2: %v %+v\n%s", err, r, out)
	}
	out, err = runBinary(t, "dlq", "redrive", "--brokers", addr, topic)
	if err != nil || !strings.Contains(out, "moved 1,") || !strings.Contains(out, "reached the end") {
		t.Fatalf("redrive rerun: %v\n%s", err, out)
	}
	if got := dlqRedrivenIn(t, addr, "mail", 3); len(got) != 3 {
		t.Errorf("redriven %d records, want 3", len(got))
	}
	for args, want := range map[string]int{
		"dlq":                         2,
		"dlq inspect":                 2,
		"dlq frobnicate x":            2,
		"dlq inspect --format xml x":  2,
		"dlq inspect --reason nope x": 2,
		"dlq inspect --brokers " + addr + " dlq.absent": 1,
	} {
		_, err := runBinary(t, strings.Fields(args)...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != want {
			t.Errorf("sluice %s: %v, want exit code %d", args, err, want)
		}
	}
}

// TestShareDLQRedriveKilledAndRerun kills "sluice dlq redrive" with
// SIGKILL after its first committed transaction, runs it again, and checks
// that every record arrived in its source topic exactly once (the killed
// run's open transaction is aborted when the rerun fences its
// transactional id).
func TestShareDLQRedriveKilledAndRerun(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	addr := ib.addr()
	const topic, n = "dlq.killed", 3000
	letters := make([]dlqLetter, n)
	for i := range letters {
		letters[i] = dlqLetter{dlqPartition: int32(i % 2), source: "events", sourcePartition: int32(i % 4),
			rejected: true, value: []byte("e" + strconv.Itoa(i))}
	}
	dlqWriteTopic(t, addr, topic, letters, map[string]int32{"events": 4})

	cmd := exec.Command(binPath, "dlq", "redrive", "--brokers", addr, topic)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var seen strings.Builder
	for !strings.Contains(seen.String(), "moved ") {
		k, err := stderr.Read(buf)
		seen.Write(buf[:k])
		if err != nil {
			t.Fatalf("redrive ended before its first commit: %v\n%s", err, seen.String())
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	out, err := runBinary(t, "dlq", "redrive", "--brokers", addr, "--format", "json", topic)
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	var r dlq.RedriveResult
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil || !r.Done {
		t.Fatalf("rerun result %+v %v\n%s", r, err, out)
	}
	t.Logf("the rerun moved %d of %d records", r.Moved, n)
	got := dlqRedrivenIn(t, addr, "events", n)
	if len(got) != n {
		t.Fatalf("%d distinct records arrived, want %d", len(got), n)
	}
	for src, rs := range got {
		if len(rs) != 1 {
			t.Errorf("%s arrived %d times", src, len(rs))
		}
	}
}

// TestShareDLQRedrivePointers: dead letters written without a copy (Kafka's
// default) point at their source record; redrive re-reads it and moves its
// key, value and headers, and counts a pointer to a record that is gone.
func TestShareDLQRedrivePointers(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	addr := ib.addr()
	createTopic(t, addr, "ledger", 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prod := client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 6 {
		r := &kgo.Record{Topic: "ledger", Partition: 1, Key: []byte("k" + strconv.Itoa(i)), Value: []byte("entry-" + strconv.Itoa(i)),
			Headers: []kgo.RecordHeader{{Key: "origin", Value: []byte("o" + strconv.Itoa(i))}}}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var letters []dlqLetter
	for _, off := range []int64{0, 2, 5, 40} {
		letters = append(letters, dlqLetter{source: "ledger", sourcePartition: 1, sourceOffset: off, rejected: true})
	}
	dlqWriteTopic(t, addr, "dlq.ledger", letters, nil)
	cfg := dlq.Config{Brokers: []string{addr}}
	s, err := dlq.Inspect(ctx, cfg, "dlq.ledger", dlq.InspectOptions{})
	if err != nil || s.WithoutCopy != 4 {
		t.Fatalf("inspect: %+v %v", s, err)
	}
	res, err := dlq.Redrive(ctx, cfg, "dlq.ledger", dlq.RedriveOptions{})
	if err != nil || res.Moved != 3 || res.Unmovable != 1 || !res.Done {
		t.Fatalf("redrive: %+v %v", res, err)
	}
	got := dlqRedrivenIn(t, addr, "ledger", 3)
	if len(got) != 3 {
		t.Fatalf("%d redriven, want 3", len(got))
	}
	for i, off := range []int64{0, 2, 5} {
		rs := got[fmt.Sprintf("dlq.ledger/0/%d", i)]
		if len(rs) != 1 {
			t.Fatalf("pointer %d arrived %d times", i, len(rs))
		}
		r := rs[0]
		if r.Partition != 1 || string(r.Key) != "k"+strconv.FormatInt(off, 10) || string(r.Value) != "entry-"+strconv.FormatInt(off, 10) ||
			len(r.Headers) != 2 || string(r.Headers[0].Value) != "o"+strconv.FormatInt(off, 10) {
			t.Errorf("pointer %d moved as partition %d %q=%q %v", i, r.Partition, r.Key, r.Value, r.Headers)
		}
	}
}
