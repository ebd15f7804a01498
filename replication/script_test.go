package replication

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/twmb/franz-go/pkg/kerr"
)

// The scripts under testdata/ are cockroachdb/datadriven files: a command
// with key=value arguments, optional input lines, "----", and the expected
// output. Regenerate the expected output after an intended change with
//
//	go test ./replication/ -run Scripts -rewrite
//
// and review the diff.

var scriptBase = time.Unix(1_700_000_000, 0)

// TestReplicaLeaderScripts drives a single Leader against an in-memory log
// (testdata/leader).
func TestReplicaLeaderScripts(t *testing.T) {
	t.Parallel()
	datadriven.Walk(t, "testdata/leader", func(t *testing.T, path string) {
		h := &leaderScript{log: &memLog{}, now: scriptBase}
		datadriven.RunTest(t, path, h.run)
	})
}

// TestReplicaFollowerScripts drives a single Follower, the test playing the leader
// (testdata/follower).
func TestReplicaFollowerScripts(t *testing.T) {
	t.Parallel()
	datadriven.Walk(t, "testdata/follower", func(t *testing.T, path string) {
		h := &followerScript{log: &memLog{}, now: scriptBase}
		datadriven.RunTest(t, path, h.run)
	})
}

// TestReplicaClusterScripts drives the cluster model step by step
// (testdata/cluster): the KIP-101/279 scenarios, acks=all with
// min.insync.replicas, ISR maintenance and failover.
func TestReplicaClusterScripts(t *testing.T) {
	t.Parallel()
	datadriven.Walk(t, "testdata/cluster", func(t *testing.T, path string) {
		var c *cluster
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd == "cluster" {
				c = newScriptCluster(t, d)
				return c.show()
			}
			if c == nil {
				d.Fatalf(t, "%s before cluster", d.Cmd)
			}
			c.t = t
			return runClusterCmd(t, c, d)
		})
	})
}

// --- shared argument helpers ---

func argInt(t *testing.T, d *datadriven.TestData, key string, def int64) int64 {
	if !d.HasArg(key) {
		return def
	}
	var v int64
	d.ScanArgs(t, key, &v)
	return v
}

func argIDs(t *testing.T, d *datadriven.TestData, key string) []int32 {
	var ids []int32
	if d.HasArg(key) {
		d.ScanArgs(t, key, &ids)
	}
	return ids
}

func argDuration(t *testing.T, d *datadriven.TestData, key string, def time.Duration) time.Duration {
	if !d.HasArg(key) {
		return def
	}
	var v time.Duration
	d.ScanArgs(t, key, &v)
	return v
}

// argTime reads t=<duration since the script's start>, defaulting to now.
func argTime(t *testing.T, d *datadriven.TestData, now time.Time) time.Time {
	if !d.HasArg("t") {
		return now
	}
	return scriptBase.Add(argDuration(t, d, "t", 0))
}

// argErr reads err=NAME as a Kafka error (or any other text as a plain
// error, standing for a transport failure).
func argErr(t *testing.T, d *datadriven.TestData) error {
	if !d.HasArg("err") {
		return nil
	}
	var name string
	d.ScanArgs(t, "err", &name)
	for code := int16(-1); code < 200; code++ {
		if e := kerr.ErrorForCode(code); e != nil {
			var ke *kerr.Error
			if errors.As(e, &ke) && ke.Message == name {
				return ke
			}
		}
	}
	return errors.New(name)
}

// appendInput appends the script's "<epoch> <count>" lines to log.
func appendInput(t *testing.T, d *datadriven.TestData, log *memLog, next *int64) []record {
	var recs []record
	for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			d.Fatalf(t, "want '<epoch> <count>', got %q", line)
		}
		epoch, err1 := strconv.Atoi(f[0])
		count, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			d.Fatalf(t, "bad line %q", line)
		}
		for range count {
			*next++
			recs = append(recs, record{epoch: LeaderEpoch(epoch), value: *next})
		}
	}
	if log != nil {
		log.append(recs...)
	}
	return recs
}

func fmtLeaderReady(b *strings.Builder, rd LeaderReady) {
	fmt.Fprintf(b, "hw=%d", rd.HighWatermark)
	if rd.HighWatermarkAdvanced {
		b.WriteString(" (advanced)")
	}
	b.WriteString("\n")
	for _, a := range rd.Acks {
		fmt.Fprintf(b, "ack %d: %s\n", a.ID, errName(a.Err))
	}
	if rd.ISRChange != nil {
		fmt.Fprintf(b, "isr-change: %s\n", rd.ISRChange)
	}
	if rd.Resigned {
		b.WriteString("resigned\n")
	}
}

func fmtFollowerReady(b *strings.Builder, rd FollowerReady) {
	if rd.Ignored {
		b.WriteString("ignored\n")
		return
	}
	if tr := rd.Truncate; tr != nil {
		fmt.Fprintf(b, "truncate to %d", tr.Offset)
		if tr.Fully {
			b.WriteString(" (fully)")
		}
		b.WriteString("\n")
	}
	if rd.Append {
		b.WriteString("append\n")
	}
	fmt.Fprintf(b, "hw=%d", rd.HighWatermark)
	if rd.HighWatermarkChanged {
		b.WriteString(" (changed)")
	}
	b.WriteString("\n")
	if rd.LogStartOffsetAdvanced {
		fmt.Fprintf(b, "log start -> %d\n", rd.LogStartOffset)
	}
	if rd.Fenced {
		b.WriteString("fenced\n")
	}
}

func fmtRequest(r Request) string {
	switch r.Kind {
	case RequestFetch:
		return fmt.Sprintf("fetch from %d: offset=%d last-epoch=%d current-epoch=%d",
			r.Leader, r.FetchOffset, r.LastFetchedEpoch, r.CurrentLeaderEpoch)
	case RequestEpochEnd:
		return fmt.Sprintf("offset-for-leader-epoch to %d: epoch=%d current-epoch=%d", r.Leader, r.Epoch, r.CurrentLeaderEpoch)
	case RequestLeaderOffsets:
		return fmt.Sprintf("list-offsets to %d: current-epoch=%d", r.Leader, r.CurrentLeaderEpoch)
	}
	return "none"
}

// --- cluster scripts ---

func newScriptCluster(t *testing.T, d *datadriven.TestData) *cluster {
	replicas := argIDs(t, d, "replicas")
	c := newCluster(t, replicas, int(argInt(t, d, "min-isr", 1)), argDuration(t, d, "lag", 10*time.Second), d.HasArg("unclean"))
	c.now = scriptBase
	c.trace = &strings.Builder{}
	c.settle()
	return c
}

func runClusterCmd(t *testing.T, c *cluster, d *datadriven.TestData) string {
	c.trace.Reset()
	broker := int32(argInt(t, d, "broker", 0))
	switch d.Cmd {
	case "produce":
		n := int(argInt(t, d, "n", 1))
		timeout := argDuration(t, d, "timeout", 5*time.Second)
		if d.HasArg("on") {
			c.produceOn(c.node(int32(argInt(t, d, "on", 0))), n, d.HasArg("acks-all"), timeout)
		} else {
			c.produce(n, d.HasArg("acks-all"), timeout)
		}
	case "replicate":
		for range argInt(t, d, "times", 1) {
			c.replicate(broker, int(argInt(t, d, "max", 100)), d.HasArg("drop-answer"))
		}
	case "settle":
		c.settle()
	case "watch":
		for n := c.node(broker); len(n.watch) > 0; {
			c.deliverWatch(n)
		}
	case "tick":
		c.tick(argDuration(t, d, "advance", time.Second))
	case "crash":
		c.crash(broker)
	case "expire":
		c.expire(broker)
	case "restart":
		if d.HasArg("quick") {
			c.quickRestart(broker, argInt(t, d, "hw", c.node(broker).hw))
		} else {
			c.restart(broker, argInt(t, d, "hw", c.node(broker).hw))
		}
	case "rejoin":
		c.rejoin(broker)
	case "shutdown":
		c.controlledShutdown(broker)
	case "preferred":
		c.preferred()
	case "show":
		return c.show()
	default:
		d.Fatalf(t, "unknown command %s", d.Cmd)
	}
	c.checkInvariants()
	out := strings.TrimSpace(c.trace.String())
	if out == "" {
		return "ok"
	}
	return out
}
