package integration

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Helpers shared by the transaction fault, cluster and bad-input tests.

// txnBatch encodes a transactional v2 record batch (attribute bit 4) of
// producer pid at epoch, its first record at sequence seq, with a CRC-32C
// computed here, independently of the broker's code.
func txnBatch(pid int64, epoch int16, seq int32, values ...string) []byte {
	now := time.Now().UnixMilli()
	var recs []byte
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte(v)}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the zero Length took one varint byte
		recs = r.AppendTo(recs)
	}
	rb := kmsg.RecordBatch{
		FirstOffset: 0, Magic: 2, Attributes: 0x10, LastOffsetDelta: int32(len(values) - 1),
		FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq,
		NumRecords: int32(len(values)), Records: recs,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// txnProduceRequest is a Produce of version v carrying one transactional
// batch for topic/partition, sent as transactional id txnID, acks=all.
func txnProduceRequest(v int16, txnID, topic string, partition int32, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = v, -1, 10000
	req.TransactionID = kmsg.StringPtr(txnID)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// markerRequest is a WriteTxnMarkers v1 with one marker for topic's
// partitions.
func markerRequest(pid int64, epoch int16, commit bool, coordEpoch int32, topic string, partitions ...int32) *kmsg.WriteTxnMarkersRequest {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Version = 1
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = pid, epoch, commit, coordEpoch
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = topic, partitions
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	return req
}

// addPartitionsV3 is a client's AddPartitionsToTxn v3.
func addPartitionsV3(txnID string, pid int64, epoch int16, parts map[string][]int32) *kmsg.AddPartitionsToTxnRequest {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 3
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = txnID, pid, epoch
	topics := make([]string, 0, len(parts))
	for t := range parts {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = t, parts[t]
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// addPartitionsCodes flattens a v0-3 AddPartitionsToTxn answer to
// "topic/partition" -> error code.
func addPartitionsCodes(resp *kmsg.AddPartitionsToTxnResponse) map[string]int16 {
	out := map[string]int16{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[fmt.Sprintf("%s/%d", t.Topic, p.Partition)] = p.ErrorCode
		}
	}
	for _, tx := range resp.Transactions {
		for _, t := range tx.Topics {
			for _, p := range t.Partitions {
				out[fmt.Sprintf("%s:%s/%d", tx.TransactionalID, t.Topic, p.Partition)] = p.ErrorCode
			}
		}
	}
	return out
}

// markerCodes flattens a WriteTxnMarkers answer to "pid:topic/partition"
// -> error code, and counts the partitions answered.
func markerCodes(resp *kmsg.WriteTxnMarkersResponse) (map[string]int16, int) {
	out, n := map[string]int16{}, 0
	for _, m := range resp.Markers {
		for _, t := range m.Topics {
			for _, p := range t.Partitions {
				out[fmt.Sprintf("%d:%s/%d", m.ProducerID, t.Topic, p.Partition)] = p.ErrorCode
				n++
			}
		}
	}
	return out, n
}

// initTxnProducer sends InitProducerId v4 for txnID and returns the
// producer id and epoch, failing the test on an error code.
func initTxnProducer(t *testing.T, addr, txnID string, timeoutMs int32) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(txnID), timeoutMs
	req.ProducerID, req.ProducerEpoch = -1, -1
	var resp *kmsg.InitProducerIDResponse
	// The first request of a fresh broker may find __transaction_state
	// still loading.
	waitFor(t, 20*time.Second, func() error {
		resp = roundTrip(t, addr, req).(*kmsg.InitProducerIDResponse)
		if resp.ErrorCode != 0 {
			return fmt.Errorf("InitProducerId %s: %v", txnID, errName(resp.ErrorCode))
		}
		return nil
	})
	return resp.ProducerID, resp.ProducerEpoch
}

// errName names a Kafka error code for messages.
func errName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	return fmt.Sprintf("%d (%v)", code, kerr.ErrorForCode(code))
}

// describeTxn describes one transactional id.
func describeTxn(t testing.TB, adm *kadm.Client, txnID string) kadm.DescribedTransaction {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := adm.DescribeTransactions(ctx, txnID)
	if err != nil {
		t.Fatalf("describe transaction %s: %v", txnID, err)
	}
	return ds[txnID]
}

// txnState renders a described transaction for before/after comparisons.
func txnState(d kadm.DescribedTransaction) string {
	if d.Err != nil {
		return "error " + d.Err.Error()
	}
	var parts []string
	for topic, ps := range d.Topics {
		for p := range ps {
			parts = append(parts, fmt.Sprintf("%s/%d", topic, p))
		}
	}
	sort.Strings(parts)
	return fmt.Sprintf("%s producer %d epoch %d timeout %d partitions %v", d.State, d.ProducerID, d.ProducerEpoch, d.TimeoutMillis, parts)
}

// offsetsView renders the high watermarks and last stable offsets of
// topics' partitions, for before/after comparisons.
func offsetsView(t testing.TB, adm *kadm.Client, topics ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hw, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = hw.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	lso, err := adm.ListCommittedOffsets(ctx, topics...)
	if err == nil {
		err = lso.Error()
	}
	if err != nil {
		t.Fatalf("list stable offsets: %v", err)
	}
	var b strings.Builder
	for _, topic := range topics {
		ps := make([]int32, 0, len(hw[topic]))
		for p := range hw[topic] {
			ps = append(ps, p)
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		for _, p := range ps {
			l, _ := lso.Lookup(topic, p)
			fmt.Fprintf(&b, "%s/%d hw %d lso %d; ", topic, p, hw[topic][p].Offset, l.Offset)
		}
	}
	return b.String()
}

// stableOffsets waits until no transaction holds any partition of topic
// (last stable offset = high watermark everywhere) and returns the high
// watermarks.
func stableOffsets(t testing.TB, adm *kadm.Client, topic string, timeout time.Duration) map[int32]int64 {
	t.Helper()
	var out map[int32]int64
	waitFor(t, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hw, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = hw.Error()
		}
		if err != nil {
			return err
		}
		lso, err := adm.ListCommittedOffsets(ctx, topic)
		if err == nil {
			err = lso.Error()
		}
		if err != nil {
			return err
		}
		out = map[int32]int64{}
		for p, o := range hw[topic] {
			l, _ := lso.Lookup(topic, p)
			if l.Offset != o.Offset {
				return fmt.Errorf("partition %d: last stable offset %d, high watermark %d", p, l.Offset, o.Offset)
			}
			out[p] = o.Offset
		}
		return nil
	})
	return out
}

// sentinelValue marks the end of what a test wrote to a partition.
const sentinelValue = "sentinel"

// writeSentinels appends a non-transactional sentinel record to every
// partition of topic. Once all transactions in a partition are over, a
// read_committed consumer that has read the sentinel has read everything
// written before it.
func writeSentinels(t testing.TB, cl *kgo.Client, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for p := range partitions {
		r := &kgo.Record{Topic: topic, Partition: p, Value: []byte(sentinelValue)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("sentinel for %s/%d: %v", topic, p, err)
		}
	}
}

// readToSentinels reads every partition of topic from the start with
// the isolation level given until each partition's sentinel arrives, and
// returns the records before the sentinels by partition.
func readToSentinels(t testing.TB, seeds []string, topic string, partitions int32, level kgo.IsolationLevel, timeout time.Duration) map[int32][]*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(level),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond), kgo.MetadataMinAge(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := map[int32][]*kgo.Record{}
	done := map[int32]bool{}
	for int32(len(done)) < partitions {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			counts := map[int32]int{}
			for p, rs := range out {
				counts[p] = len(rs)
			}
			t.Fatalf("reading %s: sentinels of %d of %d partitions after %v (records so far %v)", topic, len(done), partitions, timeout, counts)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if done[r.Partition] {
				return
			}
			if string(r.Value) == sentinelValue {
				done[r.Partition] = true
				return
			}
			out[r.Partition] = append(out[r.Partition], r)
		})
	}
	return out
}
