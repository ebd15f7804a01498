package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KIP-1191's context headers of a dead-letter record.
const (
	dlqHdrTopic         = "__dlq.errors.topic"
	dlqHdrPartition     = "__dlq.errors.partition"
	dlqHdrOffset        = "__dlq.errors.offset"
	dlqHdrGroup         = "__dlq.errors.group"
	dlqHdrDeliveryCount = "__dlq.errors.delivery.count"
	dlqHdrMessage       = "__dlq.errors.message"
)

func headerMap(r *kgo.Record) map[string]string {
	out := map[string]string{}
	for _, h := range r.Headers {
		out[h.Key] = string(h.Value)
	}
	return out
}

// readTopic reads partition 0 of topic from the start up to its end
// offset, which it first waits to be want.
func readTopic(t testing.TB, addr, topic string, want int64) []*kgo.Record {
	t.Helper()
	cl := client(t, addr)
	waitFor(t, 20*time.Second, func() error {
		if end := endOffset(t, cl, topic); end != want {
			return fmt.Errorf("%s ends at %d, want %d", topic, end, want)
		}
		return nil
	})
	if want == 0 {
		return nil
	}
	return consumeAll(t, addr, topic, int(want))
}

// TestShareDeadLettersOnceWithHeadersAndRedrive has a share consumer
// reject one record every time and release another every time, with a
// dead-letter topic configured (KIP-1191) and a delivery limit of 2: the
// rejected record lands in the DLQ once after its first delivery, the
// released one once after its second, each with the context headers
// (source topic, partition, offset, group, delivery count, reason) and
// its payload copied; the other records are accepted and the group
// finishes the partition. A redrive (`sluice dlq redrive`) puts both back
// on the source topic once, even when run twice: the group then consumes
// each once more, as a new record.
func TestShareDeadLettersOnceWithHeadersAndRedrive(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, shareBrokerSettings())
	addr := ib.addr()
	const topic, group = "orders", "orders-g"
	dlq := "dlq." + topic
	createTopic(t, addr, topic, 1, nil)
	createTopic(t, addr, dlq, 1, map[string]*string{"errors.deadletterqueue.group.enable": kadm.StringPtr("true")})
	cl := client(t, addr)
	adm := kadm.NewClient(cl)
	shareGroupDefaults(t, cl, group,
		"share.delivery.count.limit", "2",
		"errors.deadletterqueue.topic.name", dlq,
		"errors.deadletterqueue.copy.record.enable", "true")
	offs := produceEach(t, cl, topic, "ok-0", "poison", "ok-1", "flaky", "ok-2")
	const n = 5

	c := shareClient(t, []string{addr}, group, []string{topic})
	deliveries := map[string][]int32{}
	consume := func(until int64, acceptAll bool) {
		t.Helper()
		waitFor(t, 30*time.Second, func() error {
			recs, errs := pollShare(t, c, 300*time.Millisecond)
			for _, err := range errs {
				t.Errorf("share consumer: %v", err)
			}
			for _, r := range recs {
				v := string(r.Value)
				deliveries[v] = append(deliveries[v], r.DeliveryCount())
				switch {
				case acceptAll:
					r.Ack(kgo.AckAccept)
				case v == "poison" && len(deliveries[v]) == 1:
					r.Ack(kgo.AckReject)
				case v == "flaky" && len(deliveries[v]) <= 2:
					r.Ack(kgo.AckRelease)
				default:
					r.Ack(kgo.AckAccept)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.FlushAcks(ctx); err != nil {
				return err
			}
			so, err := shareStartOffset(ctx, adm, group, topic, 0)
			if err != nil {
				return err
			}
			if so != until {
				return fmt.Errorf("share-partition start offset %d, want %d; deliveries %v", so, until, deliveries)
			}
			return nil
		})
	}
	consume(n, false)
	if d := deliveries["poison"]; len(d) != 1 || d[0] != 1 {
		t.Errorf("the rejected record was delivered with counts %v, want once (1)", d)
	}
	if d := deliveries["flaky"]; len(d) != 2 || d[0] != 1 || d[1] != 2 {
		t.Errorf("the record released every time was delivered with counts %v, want [1 2] (delivery limit 2)", d)
	}

	dead := readTopic(t, addr, dlq, 2)
	want := map[string]struct {
		count  string
		reason string
	}{
		"poison": {"1", "reject"},
		"flaky":  {"2", "delivery count"},
	}
	for _, r := range dead {
		h := headerMap(r)
		v := string(r.Value)
		w, ok := want[v]
		if !ok {
			t.Errorf("unexpected dead letter %q, headers %v", v, h)
			continue
		}
		delete(want, v)
		exp := map[string]string{
			dlqHdrTopic: topic, dlqHdrPartition: "0", dlqHdrOffset: strconv.FormatInt(offs[v], 10),
			dlqHdrGroup: group, dlqHdrDeliveryCount: w.count,
		}
		for k, e := range exp {
			if h[k] != e {
				t.Errorf("dead letter %q: header %s = %q, want %q (all: %v)", v, k, h[k], e, h)
			}
		}
		if !strings.Contains(strings.ToLower(h[dlqHdrMessage]), w.reason) {
			t.Errorf("dead letter %q: reason %q does not say %q", v, h[dlqHdrMessage], w.reason)
		}
	}
	for v := range want {
		t.Errorf("no dead letter for %q", v)
	}

	// Redrive both, twice: each goes back to the source topic once.
	for range 2 {
		out, err := runBinary(t, redriveArgs(ib, dlq)...)
		if err != nil {
			t.Fatalf("sluice dlq redrive: %v\n%s", err, out)
		}
		t.Logf("sluice dlq redrive: %s", strings.TrimSpace(out))
	}
	// The group consumes what the redrives appended (whatever control
	// records a redrive writes besides, say for a transaction): each
	// redriven record exactly once, as a new record.
	readTopic(t, addr, dlq, 2) // the DLQ itself is not rewritten
	end := endOffset(t, cl, topic)
	if end < n+2 {
		t.Fatalf("after the redrives %s ends at %d, want at least %d", topic, end, n+2)
	}
	clear(deliveries)
	consume(end, true)
	if len(deliveries) != 2 {
		t.Errorf("after the redrives the group got %v, want poison and flaky once each", deliveries)
	}
	for _, v := range []string{"poison", "flaky"} {
		if d := deliveries[v]; len(d) != 1 || d[0] != 1 {
			t.Errorf("redriven %q delivered with counts %v, want once as a new record", v, d)
		}
	}
}

// redriveArgs is the `sluice dlq redrive` command line moving every record
// of dlq back to its source topic.
func redriveArgs(ib *inproc, dlq string) []string {
	return []string{"dlq", "redrive", "--brokers", ib.addr(), "--timeout", "30s", dlq}
}
