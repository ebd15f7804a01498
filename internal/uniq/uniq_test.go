package uniq

import (
	"slices"
	"testing"
)

func TestStrings(t *testing.T) {
	t.Parallel()
	in := []string{"b", "a", "b", "c", "a", "b"}
	got := Strings(in)
	if want := []string{"b", "a", "c"}; !slices.Equal(got, want) {
		t.Fatalf("Strings(%v) = %v, want %v", in, got, want)
	}
	if !slices.Equal(in, []string{"b", "a", "b", "c", "a", "b"}) {
		t.Fatalf("Strings changed its input: %v", in)
	}
	if got := Strings([]string{"x"}); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("Strings of one = %v", got)
	}
}

func TestByKey(t *testing.T) {
	t.Parallel()
	type p struct {
		name string
		v    int
	}
	got := By([]p{{"a", 1}, {"b", 2}, {"a", 3}}, func(x p) string { return x.name })
	if len(got) != 2 || got[0] != (p{"a", 1}) || got[1] != (p{"b", 2}) {
		t.Fatalf("By kept %v, want the first of each name", got)
	}
	if SizeHint(1<<30) != 1024 || SizeHint(3) != 3 {
		t.Fatal("SizeHint does not cap at 1024")
	}
}
