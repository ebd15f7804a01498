package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRetentionCheckInterval: records written with hour-old timestamps on
// a topic with retention.ms of a minute are deleted by the retention check
// that runs every log.retention.check.interval.ms (500 ms here), while a
// broker whose check interval is an hour (first check 30 s after start, as
// Kafka's log.initial.task.delay.ms) still serves them: retention no longer
// runs on the one-second flush tick.
func TestRetentionCheckInterval(t *testing.T) {
	t.Parallel()
	fast := startBroker(t, map[string]string{"log.retention.check.interval.ms": "500"})
	slow := startBroker(t, map[string]string{"log.retention.check.interval.ms": "3600000"})
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	old := time.Now().Add(-time.Hour)
	cfg := map[string]*string{"retention.ms": kadmStr("60000"), "segment.bytes": kadmStr("1024")}
	for _, addr := range []string{fast.addr(), slow.addr()} {
		createTopic(t, addr, "aged", 1, cfg)
		cl := client(t, addr, kgo.DefaultProduceTopic("aged"), kgo.ProducerLinger(0))
		for i := range 40 {
			r := &kgo.Record{Value: []byte(strings.Repeat("v", 100)), Timestamp: old.Add(time.Duration(i) * time.Millisecond)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	startOf := func(addr string) (int64, error) {
		starts, err := admin(t, addr).ListStartOffsets(ctx, "aged")
		if err != nil {
			return 0, err
		}
		o, _ := starts.Lookup("aged", 0)
		return o.Offset, o.Err
	}
	waitFor(t, 15*time.Second, func() error {
		o, err := startOf(fast.addr())
		if err == nil && o == 0 {
			err = fmt.Errorf("start offset still 0")
		}
		return err
	})
	if o, err := startOf(slow.addr()); err != nil || o != 0 {
		t.Fatalf("broker with an hour's check interval: start offset %d (%v), want 0: retention ran early", o, err)
	}
}

func kadmStr(s string) *string { return kadm.StringPtr(s) }
