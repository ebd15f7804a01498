package broker

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDescribeLogDirsOffline: once the data directory has failed (a log
// fenced by a failed write or fsync, logdir.go), DescribeLogDirs reports it
// with KAFKA_STORAGE_ERROR and no partitions.
func TestDescribeLogDirsOffline(t *testing.T) {
	t.Parallel()
	b := &Broker{cfg: Config{DataDir: "/data"}, topics: newTopicTable(), logDir: newLogDirHealth()}
	describe := func() kmsg.DescribeLogDirsResponseDir {
		t.Helper()
		req := kmsg.NewPtrDescribeLogDirsRequest()
		req.Version = 4
		resp, err := b.handleDescribeLogDirs(context.Background(), &request{req: req})
		if err != nil {
			t.Fatal(err)
		}
		dirs := resp.(*kmsg.DescribeLogDirsResponse).Dirs
		if len(dirs) != 1 || dirs[0].Dir != "/data" {
			t.Fatalf("dirs %+v, want the one data directory", dirs)
		}
		return dirs[0]
	}
	if d := describe(); d.ErrorCode != 0 {
		t.Fatalf("healthy directory: %v", kerr.ErrorForCode(d.ErrorCode))
	}
	b.logDir.fail(errors.New("injected fsync failure"))
	d := describe()
	if d.ErrorCode != kerr.KafkaStorageError.Code || len(d.Topics) != 0 {
		t.Fatalf("failed directory: %v with %d topics, want KAFKA_STORAGE_ERROR and none", kerr.ErrorForCode(d.ErrorCode), len(d.Topics))
	}
}
