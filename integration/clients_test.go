package integration

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func runCmd(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestKcatMetadataProduceConsume(t *testing.T) {
	t.Parallel()
	kcat := requireTool(t, "kcat")
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "kcat-topic", 2, nil)

	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
		Topics []struct {
			Topic      string `json:"topic"`
			Partitions []struct {
				Partition int32 `json:"partition"`
				Leader    int32 `json:"leader"`
			} `json:"partitions"`
		} `json:"topics"`
	}
	out := runCmd(t, "", kcat, "-b", ib.addr(), "-L", "-J")
	if err := json.Unmarshal([]byte(out), &md); err != nil {
		t.Fatalf("kcat -L -J output is not JSON: %v\n%s", err, out)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].ID != 1 || md.Brokers[0].Name != ib.addr() {
		t.Fatalf("brokers: %+v", md.Brokers)
	}
	found := false
	for _, tp := range md.Topics {
		if tp.Topic == "kcat-topic" {
			found = len(tp.Partitions) == 2 && tp.Partitions[0].Leader == 1
		}
	}
	if !found {
		t.Fatalf("kcat-topic with 2 partitions led by broker 1 missing: %+v", md.Topics)
	}

	var lines []string
	for i := 0; i < 50; i++ {
		lines = append(lines, "key"+itoa(i%5)+":value"+itoa(i))
	}
	runCmd(t, strings.Join(lines, "\n")+"\n", kcat, "-b", ib.addr(), "-P", "-t", "kcat-topic", "-K:")
	got := runCmd(t, "", kcat, "-b", ib.addr(), "-C", "-t", "kcat-topic", "-o", "beginning", "-e", "-q", "-f", "%k=%s\n")
	recs := strings.Split(strings.TrimSpace(got), "\n")
	if len(recs) != 50 {
		t.Fatalf("kcat consumed %d records, want 50:\n%s", len(recs), got)
	}
	// Per key, values must come back in the order produced.
	last := map[string]int{}
	for _, r := range recs {
		k, v, _ := strings.Cut(r, "=")
		var n int
		if _, err := fmtSscan(strings.TrimPrefix(v, "value"), &n); err != nil {
			t.Fatalf("bad record %q", r)
		}
		if p, ok := last[k]; ok && n <= p {
			t.Fatalf("key %s out of order: %d after %d", k, n, p)
		}
		last[k] = n
	}
}

const kafkaPythonScript = `
import sys
from kafka import KafkaProducer, KafkaConsumer
bootstrap, topic = sys.argv[1], sys.argv[2]
p = KafkaProducer(bootstrap_servers=bootstrap, acks='all')
futs = [p.send(topic, key=b'k%d' % (i % 3), value=b'v%d' % i) for i in range(100)]
for f in futs:
    f.get(timeout=30)
p.flush()
p.close()
c = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset='earliest',
                  enable_auto_commit=False, consumer_timeout_ms=10000, group_id=None)
vals = [m.value.decode() for m in c]
c.close()
print(len(vals))
print(sorted(int(v[1:]) for v in vals) == list(range(100)))
`

func TestKafkaPythonProduceConsume(t *testing.T) {
	t.Parallel()
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import kafka").Run(); err != nil {
		requireTool(t, "kafka-python (python3-kafka)")
	}
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "py-topic", 1, nil)
	out := runCmd(t, "", python, "-c", kafkaPythonScript, ib.addr(), "py-topic")
	lines := strings.Fields(out)
	if len(lines) < 2 || lines[len(lines)-2] != "100" || lines[len(lines)-1] != "True" {
		t.Fatalf("kafka-python round trip: %s", out)
	}
}
