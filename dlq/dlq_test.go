package dlq

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func dlqRecord(partition int32, offset int64, headers ...string) *kgo.Record {
	kr := &kgo.Record{Topic: "dlq.t", Partition: partition, Offset: offset, Value: []byte("v"), Timestamp: time.UnixMilli(1000)}
	for i := 0; i+1 < len(headers); i += 2 {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: headers[i], Value: []byte(headers[i+1])})
	}
	return kr
}

func context6(topic, part, reason string) []string {
	return []string{HeaderTopic, topic, HeaderPartition, part, HeaderOffset, "12", HeaderGroup, "g",
		HeaderDeliveryCount, "3", HeaderMessage, reason}
}

// TestDLQParseContext: the KIP-1191 headers become the record's context;
// missing or malformed ones make it unroutable.
func TestDLQParseContext(t *testing.T) {
	t.Parallel()
	r := fromKgo(dlqRecord(1, 5, append(context6("orders", "2", "Offset rejected by client."), "trace", "x")...))
	if r.Problem != "" || r.SourceTopic != "orders" || r.SourcePartition != 2 || r.SourceOffset != 12 ||
		r.Group != "g" || r.DeliveryCount != 3 || r.Reason != ReasonRejected || !r.HasCopy() {
		t.Fatalf("parsed %+v", r)
	}
	if got := fromKgo(dlqRecord(0, 0, context6("o", "1", "Offset delivery count exceeded the threshold.")...)); got.Reason != ReasonDeliveryLimit {
		t.Errorf("reason %s, want delivery_limit", got.Reason)
	}
	for name, hs := range map[string][]string{
		"no headers":         nil,
		"bad partition":      context6("o", "x", ""),
		"negative partition": context6("o", "-1", ""),
		"empty topic":        context6("", "1", ""),
	} {
		if r := fromKgo(dlqRecord(0, 0, hs...)); r.Problem == "" {
			t.Errorf("%s: no problem found in %+v", name, r)
		}
	}
	noCopy := dlqRecord(0, 0, context6("o", "1", "")...)
	noCopy.Value = nil
	if r := fromKgo(noCopy); r.HasCopy() {
		t.Error("a record without a key or value has a copy")
	}
}

// TestDLQSelection: each filter narrows, offsets are [from, until), and
// the identity ignores Max but not the filters.
func TestDLQSelection(t *testing.T) {
	t.Parallel()
	r := fromKgo(dlqRecord(0, 10, context6("orders", "0", "Offset rejected by client.")...))
	for _, tc := range []struct {
		s    Selection
		want bool
	}{
		{Selection{}, true},
		{Selection{SourceTopic: "orders"}, true},
		{Selection{SourceTopic: "other"}, false},
		{Selection{Reason: ReasonRejected}, true},
		{Selection{Reason: ReasonDeliveryLimit}, false},
		{Selection{Group: "h"}, false},
		{Selection{FromOffset: 10}, true},
		{Selection{FromOffset: 11}, false},
		{Selection{UntilOffset: 11}, true},
		{Selection{UntilOffset: 10}, false},
	} {
		if got := tc.s.Match(&r); got != tc.want {
			t.Errorf("%+v.Match = %v, want %v", tc.s, got, tc.want)
		}
	}
	for _, bad := range []Selection{{Reason: "nope"}, {FromOffset: -1}, {Max: -1}, {FromOffset: 5, UntilOffset: 5}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
	a := Selection{SourceTopic: "orders"}
	if a.ID("dlq.t") != (Selection{SourceTopic: "orders", Max: 5}).ID("dlq.t") {
		t.Error("Max changed the identity")
	}
	ids := map[string]bool{}
	for _, s := range []Selection{a, {SourceTopic: "orders", Reason: ReasonRejected}, {FromOffset: 1}, {UntilOffset: 1}, {Group: "orders"}} {
		ids[s.ID("dlq.t")] = true
	}
	ids[a.ID("dlq.u")] = true
	if len(ids) != 6 {
		t.Errorf("identities collide: %v", ids)
	}
	if id := a.ID("dlq.t"); !strings.HasPrefix(id, "sluice-redrive-dlq.t-") {
		t.Errorf("id %q", id)
	}
}

// TestDLQMoveHeaders: a moved record keeps its own headers, loses the
// dead-letter context and names where it was moved from.
func TestDLQMoveHeaders(t *testing.T) {
	t.Parallel()
	r := fromKgo(dlqRecord(2, 7, append(context6("o", "0", ""), "trace", "x", HeaderRedriveSource, "old")...))
	hs := moveHeaders("dlq.t", &r)
	if len(hs) != 2 || hs[0] != (Header{"trace", "x"}) || hs[1] != (Header{HeaderRedriveSource, "dlq.t/2/7"}) {
		t.Errorf("headers %v", hs)
	}
}

// TestDLQSummaryCounts: counts by reason, source and age, the listing
// bound, and unroutable records and those without a copy.
func TestDLQSummaryCounts(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1000).Add(2 * time.Hour)
	s := Summary{ByReason: map[Reason]int{}, BySourceTopic: map[string]int{}, ByAge: map[string]int{}}
	recs := []*kgo.Record{
		dlqRecord(0, 0, context6("a", "0", "Offset rejected by client.")...),
		dlqRecord(0, 1, context6("a", "0", "Offset delivery count exceeded the threshold.")...),
		dlqRecord(0, 2, context6("b", "0", "Offset rejected by client.")...),
		dlqRecord(0, 3),
	}
	recs[2].Timestamp = now.Add(-time.Minute)
	recs[1].Value = nil
	for _, kr := range recs {
		r := fromKgo(kr)
		s.add(&r, now, 2)
	}
	if s.Total != 4 || s.Unroutable != 1 || s.WithoutCopy != 1 || len(s.Records) != 2 || !s.Truncated {
		t.Fatalf("summary %+v", s)
	}
	if s.ByReason[ReasonRejected] != 2 || s.ByReason[ReasonDeliveryLimit] != 1 || s.ByReason[ReasonUnknown] != 1 {
		t.Errorf("by reason %v", s.ByReason)
	}
	if s.BySourceTopic["a"] != 2 || s.BySourceTopic["b"] != 1 || s.ByAge["1h-24h"] != 3 || s.ByAge["<1h"] != 1 {
		t.Errorf("by source %v by age %v", s.BySourceTopic, s.ByAge)
	}
	if !s.Oldest.Equal(time.UnixMilli(1000)) || !s.Newest.Equal(now.Add(-time.Minute)) {
		t.Errorf("oldest %v newest %v", s.Oldest, s.Newest)
	}
}

// TestDLQSummaryBounds: listed payloads are cut to a preview with their
// full sizes kept, and source topics past the bound share one bucket.
func TestDLQSummaryBounds(t *testing.T) {
	t.Parallel()
	s := Summary{ByReason: map[Reason]int{}, BySourceTopic: map[string]int{}, ByAge: map[string]int{}}
	for i := range maxSourceTopics + 5 {
		kr := dlqRecord(0, int64(i), context6("t"+strconv.Itoa(i), "0", "")...)
		kr.Value = make([]byte, 5000)
		r := fromKgo(kr)
		s.add(&r, time.Now(), 1)
	}
	if len(s.BySourceTopic) != maxSourceTopics+1 || s.BySourceTopic[OtherSourceTopics] != 5 {
		t.Errorf("%d source topics, other %d", len(s.BySourceTopic), s.BySourceTopic[OtherSourceTopics])
	}
	if r := s.Records[0]; len(r.Value) != listPreview || r.ValueBytes != 5000 {
		t.Errorf("listed value %d bytes of %d", len(r.Value), r.ValueBytes)
	}
}
