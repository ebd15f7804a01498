package broker

import (
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func produceReq(entries ...[2]any) []kmsg.ProduceRequestTopic {
	var ts []kmsg.ProduceRequestTopic
	for _, e := range entries {
		ts = append(ts, kmsg.ProduceRequestTopic{Topic: e[0].(string), Partitions: []kmsg.ProduceRequestTopicPartition{
			{Partition: e[1].(int32), Records: []byte(e[0].(string))},
		}})
	}
	return ts
}

func TestPartListHasRepeated(t *testing.T) {
	big := make([][2]any, 0, 20)
	for i := int32(0); i < 20; i++ {
		big = append(big, [2]any{"t", i})
	}
	cases := []struct {
		name string
		ts   []kmsg.ProduceRequestTopic
		want bool
	}{
		{"none", nil, false},
		{"one", produceReq([2]any{"a", int32(0)}), false},
		{"distinct partitions", produceReq([2]any{"a", int32(0)}, [2]any{"a", int32(1)}), false},
		{"same partition other topic", produceReq([2]any{"a", int32(0)}, [2]any{"b", int32(0)}), false},
		{"topic repeated with same partition", produceReq([2]any{"a", int32(0)}, [2]any{"b", int32(1)}, [2]any{"a", int32(0)}), true},
		{"many distinct", produceReq(big...), false},
		{"many with a repeat", produceReq(append(big, [2]any{"t", int32(7)})...), true},
	}
	for _, c := range cases {
		if got := produceParts(c.ts).hasRepeated(); got != c.want {
			t.Errorf("%s: hasRepeated = %v, want %v", c.name, got, c.want)
		}
	}
	// Repeats within one topic entry, below and above the map threshold.
	one := []kmsg.ProduceRequestTopic{{Topic: "a", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 3}, {Partition: 1}, {Partition: 3}}}}
	if !produceParts(one).hasRepeated() {
		t.Error("repeat within one topic entry not found")
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
