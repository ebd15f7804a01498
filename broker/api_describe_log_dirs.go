package broker

// DescribeLogDirs: v0-4.
//
// Sluice has one log directory, the data directory, reported by its
// absolute path. Null topics ask for every hosted partition; a request's
// topics and partitions are deduplicated, and partitions not hosted here
// are left out, as in Kafka. Per partition: the size of its segment files,
// and its offset lag: 0 on a leader, and on a follower the records between
// its log end and the leader's high watermark at its last fetch (Kafka's
// max(HW - LEO, 0)). IsFuture is always false (no alter-log-dirs moves).
// v4 adds the file system's total and usable bytes (statfs). A directory
// whose logs are fenced after an I/O error is offline: KAFKA_STORAGE_ERROR
// and no partitions (see logdir.go). Cordoning (v5) is not supported.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) describeLogDirsAPI() api {
	return api{key: 35, min: 0, max: 4, handle: b.handleDescribeLogDirs}
}

func (b *Broker) handleDescribeLogDirs(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.DescribeLogDirsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = b.logDirPath()
	if b.logDirOffline(dir.Dir) {
		dir.ErrorCode = kerr.KafkaStorageError.Code
		resp.Dirs = append(resp.Dirs, dir)
		return resp, nil
	}
	if req.Version >= 4 {
		dir.TotalBytes, dir.UsableBytes = diskSpace(dir.Dir)
	}
	for _, want := range b.describeLogDirsWanted(req) {
		ts := b.topics.get(want.topic)
		if ts == nil {
			continue
		}
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = want.topic
		parts := ts.partitions()
		for i, p := range parts {
			if p == nil || (want.partitions != nil && !want.partitions[int32(i)]) {
				continue
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition = int32(i)
			dp.Size = p.log.Size()
			if !p.rep.leading.Load() {
				dp.OffsetLag = max(p.rep.lagRecords.Load(), 0)
			}
			dt.Partitions = append(dt.Partitions, dp)
		}
		if len(dt.Partitions) > 0 {
			dir.Topics = append(dir.Topics, dt)
		}
	}
	resp.Dirs = append(resp.Dirs, dir)
	return resp, nil
}

// logDirsWant is one topic a DescribeLogDirs request asks about; nil
// partitions means all of them.
type logDirsWant struct {
	topic      string
	partitions map[int32]bool
}

// describeLogDirsWanted merges the request's topics and partitions, so a
// topic or partition named many times is described once; null topics ask
// for every topic.
func (b *Broker) describeLogDirsWanted(req *kmsg.DescribeLogDirsRequest) []logDirsWant {
	if req.Topics == nil {
		var all []logDirsWant
		for _, ts := range b.topics.all() {
			all = append(all, logDirsWant{topic: ts.meta().Name})
		}
		return all
	}
	idx := map[string]int{}
	var out []logDirsWant
	for _, t := range req.Topics {
		i, ok := idx[t.Topic]
		if !ok {
			i = len(out)
			idx[t.Topic] = i
			out = append(out, logDirsWant{topic: t.Topic, partitions: map[int32]bool{}})
		}
		for _, p := range t.Partitions {
			out[i].partitions[p] = true
		}
	}
	return out
}
