package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDescribeLogDirs: kadm's DescribeAllLogDirs against three brokers
// finds each broker's data directory by its absolute path with the file
// system's total and usable bytes (v4), every replica of the topic with the
// same non-zero size once followers have caught up, and no offset lag.
func TestDescribeLogDirs(t *testing.T) {
	c := startCluster(t, 3)
	c.createTopic("dirs", 3, 3, nil)
	cl := c.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("dirs"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 30 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 3), Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	waitFor(t, 30*time.Second, func() error {
		all, err := adm.DescribeAllLogDirs(ctx, nil)
		if err != nil {
			return err
		}
		if len(all) != 3 {
			return fmt.Errorf("%d brokers answered, want 3", len(all))
		}
		sizes := map[int32]int64{}
		for id, dirs := range all {
			want, _ := filepath.Abs(c.procs[id].dataDir)
			d, ok := dirs[want]
			if len(dirs) != 1 || !ok {
				return fmt.Errorf("broker %d: dirs %v, want only %s", id, keys(dirs), want)
			}
			if d.Err != nil || d.TotalBytes <= 0 || d.UsableBytes <= 0 || d.UsableBytes > d.TotalBytes {
				return fmt.Errorf("broker %d: err %v total %d usable %d", id, d.Err, d.TotalBytes, d.UsableBytes)
			}
			for p := range int32(3) {
				dp, ok := d.Topics.Lookup("dirs", p)
				if !ok {
					return fmt.Errorf("broker %d lacks dirs-%d", id, p)
				}
				if dp.Size <= 0 || dp.OffsetLag != 0 {
					return fmt.Errorf("broker %d dirs-%d: size %d lag %d", id, p, dp.Size, dp.OffsetLag)
				}
				if s, ok := sizes[p]; ok && s != dp.Size {
					return fmt.Errorf("dirs-%d: sizes differ across replicas (%d, %d)", p, s, dp.Size)
				}
				sizes[p] = dp.Size
			}
		}
		return nil
	})

	// A topic and partition named many times are described once; a
	// partition that does not exist is left out.
	req := kmsg.NewPtrDescribeLogDirsRequest()
	req.Version = 4
	for range 1000 {
		rt := kmsg.NewDescribeLogDirsRequestTopic()
		rt.Topic, rt.Partitions = "dirs", []int32{1, 1, 7}
		req.Topics = append(req.Topics, rt)
	}
	// Sent to one broker as is (kgo would shard it by partition).
	kr, err := client(t, c.procs[1].addr).Broker(1).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kr.(*kmsg.DescribeLogDirsResponse)
	if len(resp.Dirs) != 1 || len(resp.Dirs[0].Topics) != 1 || len(resp.Dirs[0].Topics[0].Partitions) != 1 ||
		resp.Dirs[0].Topics[0].Partitions[0].Partition != 1 {
		t.Fatalf("repeated request: %+v", resp.Dirs)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
