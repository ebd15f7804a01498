package main

import (
	"errors"
	"fmt"
	"strings"
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
	// Producers is the check per producer client with --producers above
	// 1: the records of each client's producer ids against the client's
	// own expected count; Unexpected then counts records whose producer
	// id no client had.
	Producers []producerCheck `json:"producers,omitempty"`
	OK        bool            `json:"ok"`
}

// producerCheck is the consumed-records check of one producer client.
type producerCheck struct {
	Producer    int     `json:"producer"`
	ProducerIDs []int64 `json:"producer_ids"`
	Expected    int64   `json:"expected"`
	Consumed    int64   `json:"consumed"`
	OK          bool    `json:"ok"`
}

// producerExpect is what the consumer should read of one producer client:
// expected records carrying one of its producer ids (those its
// acknowledged records had; kgo keeps one id unless it has to reset it).
type producerExpect struct {
	pids     []int64
	expected int64
}

// verifyProducers checks the records consumed per producer id (byPID)
// against each producer client's expected count: every client must have
// exactly its own, and no record may carry an id no client had.
func verifyProducers(isolation string, expects []producerExpect, byPID map[int64]int64) *verification {
	v := &verification{Isolation: isolation, OK: true}
	owned := make(map[int64]bool)
	for i, e := range expects {
		pc := producerCheck{Producer: i, ProducerIDs: e.pids, Expected: e.expected}
		for _, pid := range e.pids {
			pc.Consumed += byPID[pid]
			owned[pid] = true
		}
		pc.OK = pc.Consumed == pc.Expected
		v.OK = v.OK && pc.OK
		v.Expected += e.expected
		v.Producers = append(v.Producers, pc)
	}
	for pid, n := range byPID {
		v.Consumed += n
		if !owned[pid] {
			v.Unexpected += n
		}
	}
	v.OK = v.OK && v.Unexpected == 0
	return v
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
	msg += v.producerSummary()
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
	if len(v.Producers) > 0 {
		s += fmt.Sprintf(" (%d producers)", len(v.Producers))
	}
	if !v.OK {
		s += v.producerSummary()
	}
	return s
}

// producerSummary names the producer clients whose check failed, and the
// records no client produced; empty when there are none.
func (v *verification) producerSummary() string {
	var b strings.Builder
	for _, pc := range v.Producers {
		if !pc.OK {
			fmt.Fprintf(&b, "; producer %d (ids %v) read %d, want %d", pc.Producer, pc.ProducerIDs, pc.Consumed, pc.Expected)
		}
	}
	if len(v.Producers) > 0 && v.Unexpected > 0 {
		fmt.Fprintf(&b, "; %d records of unknown producer ids", v.Unexpected)
	}
	return b.String()
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
