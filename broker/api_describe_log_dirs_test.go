package broker

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/storage"
	"github.com/sluicedev/sluice/storage/vfs"
)

// TestDescribeLogDirsOfflineWhenFenced: once a log of the data directory
// is fenced by a failed fsync, DescribeLogDirs reports the directory with
// KAFKA_STORAGE_ERROR and no partitions.
func TestDescribeLogDirsOfflineWhenFenced(t *testing.T) {
	t.Parallel()
	efs := vfs.NewErrorFS(vfs.NewMem())
	s, err := storage.OpenStore("/data", storage.StoreOptions{FS: efs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	l, err := s.Log("t", 0, storage.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b := &Broker{cfg: Config{DataDir: "/data"}, store: s, topics: newTopicTable()}
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
	if _, err := l.Append(testBatch(t, []byte("v")), storage.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	efs.Add(vfs.Rule{Op: vfs.OpSync, Nth: 1, Sticky: true, Err: errors.New("injected fsync failure")})
	if err := l.Flush(); err == nil {
		t.Fatal("flush with a failing fsync succeeded")
	}
	d := describe()
	if d.ErrorCode != kerr.KafkaStorageError.Code || len(d.Topics) != 0 {
		t.Fatalf("fenced directory: %v with %d topics, want KAFKA_STORAGE_ERROR and none", kerr.ErrorForCode(d.ErrorCode), len(d.Topics))
	}
}
