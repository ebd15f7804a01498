package broker

import (
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceReq is a produce request with one topic entry per element of
// topics, each with the given partitions.
func produceReq(topics []string, parts ...[]int32) []kmsg.ProduceRequestTopic {
	var ts []kmsg.ProduceRequestTopic
	for i, name := range topics {
		t := kmsg.ProduceRequestTopic{Topic: name}
		for _, p := range parts[i] {
			t.Partitions = append(t.Partitions, kmsg.ProduceRequestTopicPartition{Partition: p})
		}
		ts = append(ts, t)
	}
	return ts
}

func TestPartListHasRepeated(t *testing.T) {
	seq := func(from, n int32) []int32 {
		var out []int32
		for i := range n {
			out = append(out, from+i)
		}
		return out
	}
	shuffled := seq(0, 100)
	shuffled[10], shuffled[90] = shuffled[90], shuffled[10]
	withRepeat := append(slices.Clone(shuffled), 42)
	huge := []int32{1 << 30, -5, 7, 3, 2, 1, 0, 9, 8, 6}
	cases := []struct {
		name string
		ts   []kmsg.ProduceRequestTopic
		want bool
	}{
		{"none", nil, false},
		{"one partition", produceReq([]string{"a"}, []int32{0}), false},
		{"increasing", produceReq([]string{"a"}, seq(0, 1000)), false},
		{"few unordered", produceReq([]string{"a"}, []int32{3, 1, 2}), false},
		{"few with a repeat", produceReq([]string{"a"}, []int32{3, 1, 3}), true},
		{"many unordered", produceReq([]string{"a"}, shuffled), false},
		{"many with a repeat", produceReq([]string{"a"}, withRepeat), true},
		{"beyond the bitset", produceReq([]string{"a"}, huge), false},
		{"beyond the bitset with a repeat", produceReq([]string{"a"}, append(slices.Clone(huge), -5)), true},
		{"same partition of other topics", produceReq([]string{"a", "b"}, []int32{0}, []int32{0}), false},
		{"topic repeated", produceReq([]string{"a", "b", "a"}, []int32{0}, []int32{1}, []int32{1}), true},
	}
	for _, c := range cases {
		if got := produceParts(c.ts).hasRepeated(); got != c.want {
			t.Errorf("%s: hasRepeated = %v, want %v", c.name, got, c.want)
		}
	}
	// repeated names exactly the partitions that repeat, across entries.
	ts := produceReq([]string{"a", "b", "a"}, []int32{0, 1}, []int32{1}, []int32{1, 2})
	if got := produceParts(ts).repeated(); !reflect.DeepEqual(got, map[tp]bool{{"a", 1}: true}) {
		t.Errorf("repeated = %v", got)
	}
}

func TestMergeLastWins(t *testing.T) {
	ts := []kmsg.ProduceRequestTopic{
		{Topic: "a", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: []byte("1")}, {Partition: 1, Records: []byte("2")}}},
		{Topic: "b", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: []byte("3")}}},
		{Topic: "a", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: []byte("4")}, {Partition: 2, Records: []byte("5")}}},
	}
	got := mergeLastWins(ts,
		func(t *kmsg.ProduceRequestTopic) string { return t.Topic },
		func(t *kmsg.ProduceRequestTopic) *[]kmsg.ProduceRequestTopicPartition { return &t.Partitions },
		func(p *kmsg.ProduceRequestTopicPartition) int32 { return p.Partition })
	want := []kmsg.ProduceRequestTopic{
		{Topic: "a", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: []byte("4")}, {Partition: 1, Records: []byte("2")}, {Partition: 2, Records: []byte("5")}}},
		{Topic: "b", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: []byte("3")}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merged\n%+v\nwant\n%+v", got, want)
	}
	if string(ts[0].Partitions[0].Records) != "1" {
		t.Fatal("the request's own entries were changed")
	}
}

func TestRepeatedNames(t *testing.T) {
	names := []string{"a", "b", "a", "c", "b", "b"}
	got := repeated(len(names), func(i int) string { return names[i] })
	if !reflect.DeepEqual(got, map[string]bool{"a": true, "b": true}) {
		t.Fatalf("repeated = %v", got)
	}
	many := make([]string, 100)
	for i := range many {
		many[i] = string(rune('A' + i))
	}
	if got := repeated(len(many), func(i int) string { return many[i] }); got != nil {
		t.Fatalf("distinct names reported repeated: %v", got)
	}
	many[99] = many[3]
	if got := repeated(len(many), func(i int) string { return many[i] }); !got[many[3]] || len(got) != 1 {
		t.Fatalf("repeated = %v", got)
	}
}

// BenchmarkProduceRepeatCheck is the cost the repeat check adds to every
// Produce request, by its number of partitions.
func BenchmarkProduceRepeatCheck(b *testing.B) {
	for _, n := range []int{1, 8, 64, 1000} {
		ts := []kmsg.ProduceRequestTopic{{Topic: "orders"}}
		for i := range n {
			ts[0].Partitions = append(ts[0].Partitions, kmsg.ProduceRequestTopicPartition{Partition: int32(i)})
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if produceParts(ts).hasRepeated() {
					b.Fatal("no repeats here")
				}
			}
		})
	}
}
