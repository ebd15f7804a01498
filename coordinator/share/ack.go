package share

import "github.com/twmb/franz-go/pkg/kerr"

// ValidateAcks checks acknowledgement batches without a partition, as
// Kafka does before looking at any record: each batch has LastOffset >=
// FirstOffset, starts after the previous batch ends, and has one type or
// one per offset, each between AckGap and maxType (AckRelease.. for
// requests that may not renew, AckRenew for those that may). It returns 0
// or INVALID_REQUEST. Its work is linear in the request's size.
func ValidateAcks(acks []Ack, maxType AckType) int16 {
	for i, a := range acks {
		if a.LastOffset < a.FirstOffset || (i > 0 && a.FirstOffset <= acks[i-1].LastOffset) {
			return kerr.InvalidRequest.Code
		}
		if len(a.Types) == 0 || (len(a.Types) > 1 && uint64(len(a.Types)-1) != uint64(a.LastOffset)-uint64(a.FirstOffset)) {
			return kerr.InvalidRequest.Code
		}
		for _, t := range a.Types {
			if t < AckGap || t > maxType {
				return kerr.InvalidRequest.Code
			}
		}
	}
	return 0
}

// typeAt is the acknowledgement type of offset o in a (validated).
func (a *Ack) typeAt(o int64) AckType {
	if len(a.Types) == 1 {
		return a.Types[0]
	}
	return a.Types[o-a.FirstOffset]
}

// acknowledge checks every acked offset against the window, then applies
// them all. Offsets below the start offset are done and skipped, as Kafka
// 4.2 skips them (its records were archived or acknowledged: by AdvanceLogStart,
// or after the lock expired); a batch reaching past the window end is
// INVALID_REQUEST, as Kafka answers. Gap offsets need not be acquired
// by member (they are archived only if they are); every other offset must
// be. The work is linear in the window plus the number of batches: a
// batch is only walked where it overlaps the window.
func (p *Partition) acknowledge(n int64, member string, acks []Ack) int16 {
	p.stamp(n)
	end := p.end()
	for i := range acks {
		a := &acks[i]
		if a.LastOffset < p.start {
			continue // done already, as Kafka 4.2 skips it
		}
		if a.LastOffset >= end {
			return kerr.InvalidRequest.Code
		}
		for o := max(a.FirstOffset, p.start); o <= a.LastOffset; o++ {
			if a.typeAt(o) == AckGap {
				continue
			}
			if r := &p.recs[o-p.start]; r.state != Acquired || r.member != member {
				return kerr.InvalidRecordState.Code
			}
		}
	}
	changed := false
	for i := range acks {
		a := &acks[i]
		for o := max(a.FirstOffset, p.start); o <= a.LastOffset; o++ {
			r := &p.recs[o-p.start]
			if r.state != Acquired || r.member != member {
				continue // a gap offset not ours
			}
			switch a.typeAt(o) {
			case AckGap:
				*r = rec{state: Archived, count: r.count}
				changed = true
			case AckAccept:
				*r = rec{state: Acknowledged, count: r.count}
				changed = true
			case AckRelease:
				changed = p.fail(r, n) || changed
			case AckReject:
				p.toLimit(r, true)
				changed = true
			case AckRenew:
				r.at = n + int64(p.cfg.LockDuration) // State does not show locks
			}
		}
	}
	if changed {
		p.version++
	}
	p.advance()
	return 0
}
