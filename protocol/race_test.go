//go:build race

package protocol

// raceEnabled reports a -race build, in which the compiler keeps the
// intermediate slice of append(a, make([]T, n)...) and allocation
// measurements double.
const raceEnabled = true
