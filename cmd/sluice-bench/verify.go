package main

import (
	"errors"
	"fmt"
)

// errVerifyFailed means the consumer did not read exactly the records the
// producer got acknowledged (with read_committed: those of committed
// transactions).
var errVerifyFailed = errors.New("sluice-bench: consumed records differ from the produced ones")

// verification is the consume phase's check that it read exactly the
// records produced: every acknowledged record (read_committed: every record
// of a committed transaction, and none of an aborted one), once. It runs
// for idempotent and transactional producers, whose contract this is, on a
// topic the run created.
//
// The throughput cells share one value among all records, so they check
// the count only. --mode e2e stamps a sequence number into every value and
// checks each record: Missing, Unexpected (produced but aborted, or never
// produced) and Duplicates are then known, and BySequence is set.
type verification struct {
	Isolation  string `json:"isolation"`
	Expected   int64  `json:"expected"`
	Consumed   int64  `json:"consumed"`
	BySequence bool   `json:"by_sequence,omitempty"`
	Missing    int64  `json:"missing,omitempty"`
	Unexpected int64  `json:"unexpected,omitempty"`
	Duplicates int64  `json:"duplicates,omitempty"`
	OK         bool   `json:"ok"`
}

// err returns nil for a passed check and an errVerifyFailed saying what
// differed otherwise.
func (v *verification) err() error {
	if v.OK {
		return nil
	}
	msg := fmt.Sprintf("%s consumer read %d records, want %d", v.Isolation, v.Consumed, v.Expected)
	if v.BySequence {
		msg += fmt.Sprintf(" (%d missing, %d unexpected, %d duplicates)", v.Missing, v.Unexpected, v.Duplicates)
	}
	return fmt.Errorf("%w: %s", errVerifyFailed, msg)
}

// summary is the check on one line.
func (v *verification) summary() string {
	verdict := "PASS"
	if !v.OK {
		verdict = "FAIL"
	}
	s := fmt.Sprintf("verify %s %d/%d %s", v.Isolation, v.Consumed, v.Expected, verdict)
	if v.BySequence && !v.OK {
		s += fmt.Sprintf(" (%d missing, %d unexpected, %d dup)", v.Missing, v.Unexpected, v.Duplicates)
	}
	return s
}

// countRanges is the number of sequence numbers in rs.
func countRanges(rs []seqRange) int64 {
	var n int64
	for _, r := range rs {
		n += r.to - r.from
	}
	return n
}

// verifyCount compares a consumed count with the expected records.
func verifyCount(isolation string, expected []seqRange, consumed int64) *verification {
	v := &verification{Isolation: isolation, Expected: countRanges(expected), Consumed: consumed}
	v.OK = v.Consumed == v.Expected
	return v
}

// seqSet records which sequence numbers a consumer has seen.
type seqSet struct {
	bits       []uint64
	n          int64 // records added, duplicates included
	duplicates int64
	invalid    int64 // records without a stamp, or with a negative sequence
}

// add notes one consumed record with sequence number seq.
func (s *seqSet) add(seq int64) {
	s.n++
	if seq < 0 {
		s.invalid++
		return
	}
	word, bit := seq/64, uint64(1)<<(seq%64)
	if need := int(word) + 1; need > len(s.bits) {
		s.bits = append(s.bits, make([]uint64, need-len(s.bits))...)
	}
	if s.bits[word]&bit != 0 {
		s.duplicates++
		return
	}
	s.bits[word] |= bit
}

func (s *seqSet) has(seq int64) bool {
	word := seq / 64
	return seq >= 0 && word < int64(len(s.bits)) && s.bits[word]&(uint64(1)<<(seq%64)) != 0
}

// distinct is the number of different sequence numbers seen.
func (s *seqSet) distinct() int64 { return s.n - s.duplicates - s.invalid }

// verifySeqs compares the records a consumer saw, by sequence number, with
// the expected ones (sorted, disjoint ranges).
func verifySeqs(isolation string, expected []seqRange, seen *seqSet) *verification {
	v := &verification{Isolation: isolation, Expected: countRanges(expected), Consumed: seen.n, BySequence: true,
		Duplicates: seen.duplicates}
	var found int64
	for _, r := range expected {
		for seq := r.from; seq < r.to; seq++ {
			if seen.has(seq) {
				found++
			}
		}
	}
	v.Missing = v.Expected - found
	v.Unexpected = seen.distinct() - found + seen.invalid
	v.OK = v.Missing == 0 && v.Unexpected == 0 && v.Duplicates == 0
	return v
}
