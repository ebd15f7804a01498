package dlq

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// sourceFetchBytes bounds one read of a source partition.
const sourceFetchBytes = 1 << 20

// sourceReader reads original records from source topics, for dead
// letters written without a copy (errors.deadletterqueue.copy.record.enable
// off, Kafka's default): the DLQ record points at the source record, which
// redrive re-reads, read_committed, from the partition leader. It keeps one
// fetched chunk, so consecutive pointers into one partition cost one fetch.
type sourceReader struct {
	cl  *kgo.Client
	adm *kadm.Client
	// topics caches source topics (a zero detail: no such topic).
	topics map[string]kadm.TopicDetail
	chunk  struct {
		topic     string
		partition int32
		from, end int64 // the chunk covers offsets [from, end)
		recs      map[int64]*kgo.Record
	}
}

func newSourceReader(cl *kgo.Client) *sourceReader {
	return &sourceReader{cl: cl, adm: kadm.NewClient(cl), topics: map[string]kadm.TopicDetail{}}
}

// partition returns topic's partition p and the topic's id, ok false when
// it does not exist.
func (s *sourceReader) partition(ctx context.Context, topic string, p int32) (kadm.PartitionDetail, [16]byte, bool) {
	td, cached := s.topics[topic]
	if !cached {
		if all, err := s.adm.ListTopics(ctx, topic); err == nil {
			if d, ok := all[topic]; ok && d.Err == nil {
				td = d
			}
		}
		if len(s.topics) >= maxSourceTopics {
			clear(s.topics)
		}
		s.topics[topic] = td
	}
	d, ok := td.Partitions[p]
	return d, td.ID, ok
}

// record returns the record at topic/p/offset, or nil when it is no longer
// there (retention, compaction, an aborted transaction). An error means
// the read failed and is worth retrying.
func (s *sourceReader) record(ctx context.Context, topic string, p int32, offset int64) (*kgo.Record, error) {
	c := &s.chunk
	if c.recs != nil && c.topic == topic && c.partition == p && offset >= c.from && offset < c.end {
		return c.recs[offset], nil
	}
	d, id, ok := s.partition(ctx, topic, p)
	if !ok {
		return nil, nil
	}
	for attempt := 0; ; attempt++ {
		recs, end, err := s.fetch(ctx, d, id, offset)
		if err == nil {
			c.topic, c.partition, c.from, c.end, c.recs = topic, p, offset, end, recs
			return recs[offset], nil
		}
		if attempt >= 2 || ctx.Err() != nil {
			return nil, err
		}
		delete(s.topics, topic) // the leader may have moved
		if d, id, ok = s.partition(ctx, topic, p); !ok {
			return nil, nil
		}
	}
}

// fetch reads d's partition from offset on its leader and returns the
// records by offset and the offset after the last one returned (offset+1
// when nothing came back, so a gone record is not read again).
func (s *sourceReader) fetch(ctx context.Context, d kadm.PartitionDetail, id [16]byte, offset int64) (map[int64]*kgo.Record, int64, error) {
	if d.Leader < 0 {
		return nil, 0, fmt.Errorf("dlq: %s-%d has no leader", d.Topic, d.Partition)
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MinBytes = 0
	req.MaxBytes = sourceFetchBytes
	req.IsolationLevel = 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = d.Topic, id // by name up to v12, by id from v13
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = d.Partition, offset, sourceFetchBytes
	rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := s.cl.Broker(int(d.Leader)).Request(ctx, req)
	if err != nil {
		return nil, 0, fmt.Errorf("dlq: fetch %s-%d: %w", d.Topic, d.Partition, err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, 0, fmt.Errorf("dlq: fetch %s-%d: %w", d.Topic, d.Partition, err)
	}
	for _, t := range resp.Topics {
		for i := range t.Partitions {
			fpr := &t.Partitions[i]
			if (t.Topic != d.Topic && t.TopicID != id) || fpr.Partition != d.Partition {
				continue
			}
			if fpr.ErrorCode == kerr.OffsetOutOfRange.Code {
				return map[int64]*kgo.Record{}, offset + 1, nil // below the log start: gone
			}
			fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
				Offset: offset, IsolationLevel: kgo.ReadCommitted(), Topic: d.Topic, Partition: d.Partition,
			}, fpr, kgo.DefaultDecompressor(), nil)
			if fp.Err != nil {
				return nil, 0, fmt.Errorf("dlq: fetch %s-%d: %w", d.Topic, d.Partition, fp.Err)
			}
			out := make(map[int64]*kgo.Record, len(fp.Records))
			end := offset + 1
			for _, r := range fp.Records {
				out[r.Offset] = r
				end = max(end, r.Offset+1)
			}
			return out, end, nil
		}
	}
	return nil, 0, fmt.Errorf("dlq: fetch %s-%d: partition missing from the response", d.Topic, d.Partition)
}
