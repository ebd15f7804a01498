package coordinator

import "testing"

func TestCoordinatorPartitionFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key  string
		n    int32
		want int32
	}{
		{"abc", 50, 96354 % 50},          // "abc".hashCode() == 96354
		{"polygenelubricants", 50, 0},    // hashCode() == Integer.MIN_VALUE; Utils.abs maps it to 0
		{"", 50, 0},                      // hashCode() == 0
		{"ü", 50, 252 % 50},              // one UTF-16 unit
		{"\U0001F600", 50, 1772899 % 50}, // a surrogate pair: 0xD83D*31 + 0xDE00
		{"Aa", 7, 2112 % 7},              // 'A'*31 + 'a'
		{"my-group", 0, 0},               // degenerate partition count
		{"zzzzzzzzzzzzzzzz", 50, func() int32 { // overflowing, negative hash
			h := javaStringHashCode("zzzzzzzzzzzzzzzz")
			if h < 0 {
				h = -h
			}
			return h % 50
		}()},
	} {
		if got := PartitionFor(tc.key, tc.n); got != tc.want {
			t.Errorf("PartitionFor(%q, %d) = %d, want %d", tc.key, tc.n, got, tc.want)
		}
	}
	if javaStringHashCode("polygenelubricants") != -2147483648 {
		t.Fatal("javaStringHashCode disagrees with Java on a known value")
	}
}
