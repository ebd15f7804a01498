// Package uniq drops repeated entries from request lists. The broker and
// the group coordinator both answer a repeated topic, group or protocol
// once, so that no request costs more than its distinct entries need; this
// leaf package is the one place that does it, importable by both.
package uniq

// SizeHint sizes a map for the distinct entries of a list of n: n itself
// up to a point, since a hostile list is mostly repeats and a map sized for
// millions of entries would itself be the balloon.
func SizeHint(n int) int { return min(n, 1024) }

// By returns xs without the entries whose key repeats an earlier one,
// first occurrences in order. It returns xs itself when it is too short to
// repeat; otherwise a new slice, leaving xs as it was.
func By[T any, K comparable](xs []T, key func(T) K) []T {
	if len(xs) < 2 {
		return xs
	}
	seen := make(map[K]struct{}, SizeHint(len(xs)))
	out := make([]T, 0, SizeHint(len(xs)))
	for _, x := range xs {
		k := key(x)
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, x)
	}
	return out
}

// Strings is By for a list of names.
func Strings(ss []string) []string { return By(ss, func(s string) string { return s }) }
