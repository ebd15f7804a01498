package integration

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestNodeIDZero runs the built binary as nodes 0 and 1: node 0 is a
// broker like any other (Kafka's node.id starts at 0), listed in Metadata,
// leading partitions, describing itself as "0", and data produced through
// it is replicated and consumed.
func TestNodeIDZero(t *testing.T) {
	c := startClusterIDs(t, []int32{0, 1})
	c.createTopic("zero", 4, 2, nil)
	view := c.waitISR("zero", 2, 30*time.Second)
	led := false
	for _, pv := range view {
		led = led || pv.Leader == 0
	}
	if !led {
		t.Fatalf("node 0 leads no partition: %+v", view)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(c.client())
	md, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !hasNode(md.Brokers, 0) {
		t.Fatalf("Metadata brokers %v lack node 0", md.Brokers.NodeIDs())
	}
	rc, err := adm.DescribeBrokerConfigs(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, r := range rc {
		for _, cfg := range r.Configs {
			if cfg.Key == "node.id" {
				got = cfg.MaybeValue()
			}
		}
	}
	if got != "0" {
		t.Fatalf("broker 0 describes node.id=%q, want 0", got)
	}

	cl := c.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ConsumeTopics("zero"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	const n = 40
	for i := range n {
		r := &kgo.Record{Topic: "zero", Partition: int32(i % 4), Value: []byte{byte(i)}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	seen := 0
	for seen < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", seen, n, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		seen += fs.NumRecords()
	}
}

func hasNode(bs kadm.BrokerDetails, id int32) bool {
	for _, b := range bs {
		if b.NodeID == id {
			return true
		}
	}
	return false
}

// TestNodeIDNegativeRefused: a negative --node-id is a start-up error,
// not silently replaced.
func TestNodeIDNegativeRefused(t *testing.T) {
	out, err := exec.Command(binPath, "--node-id", "-1", "--data-dir", t.TempDir(),
		"--listen", freeAddr(t), "--http-listen", "").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--node-id -1") {
		t.Fatalf("--node-id -1: err %v, output %q; want a start-up error naming the flag", err, out)
	}
}
