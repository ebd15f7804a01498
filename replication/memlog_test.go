package replication

import (
	"fmt"
	"strings"
	"testing"
)

// record is one record of a memLog: the leader epoch it was written in and
// a value unique across the test, so equal records mean the same write.
type record struct {
	epoch LeaderEpoch
	value int64
}

type epochEntry struct {
	epoch LeaderEpoch
	start Offset
}

// memLog is an in-memory partition log with a leader-epoch cache that
// follows the same rules as storage's (Kafka's LeaderEpochFileCache): an
// entry per epoch at the offset of its first record, dropped by
// truncation, clipped by log-start advances, and EndOffsetForEpoch
// answering (-1, -1) for epochs outside the cached range.
type memLog struct {
	start  Offset
	recs   []record
	epochs []epochEntry
}

var _ Log = (*memLog)(nil)

func (m *memLog) LogStartOffset() Offset { return m.start }
func (m *memLog) LogEndOffset() Offset   { return m.start + Offset(len(m.recs)) }

func (m *memLog) LatestEpoch() LeaderEpoch {
	if len(m.epochs) == 0 {
		return UndefinedEpoch
	}
	return m.epochs[len(m.epochs)-1].epoch
}

func (m *memLog) EndOffsetForEpoch(epoch LeaderEpoch) (LeaderEpoch, Offset) {
	n := len(m.epochs)
	if epoch < 0 || n == 0 || epoch < m.epochs[0].epoch || epoch > m.epochs[n-1].epoch {
		return UndefinedEpoch, UndefinedOffset
	}
	if epoch == m.epochs[n-1].epoch {
		return epoch, m.LogEndOffset()
	}
	i := 0
	for m.epochs[i].epoch <= epoch {
		i++
	}
	return m.epochs[i-1].epoch, m.epochs[i].start
}

// append adds records as they come (a leader writing, or a follower
// copying its leader), keeping the epoch cache.
func (m *memLog) append(recs ...record) {
	for _, r := range recs {
		if n := len(m.epochs); n == 0 || m.epochs[n-1].epoch < r.epoch {
			m.epochs = append(m.epochs, epochEntry{epoch: r.epoch, start: m.LogEndOffset()})
		} else if m.epochs[n-1].epoch > r.epoch {
			panic(fmt.Sprintf("memLog: append of epoch %d after epoch %d", r.epoch, m.epochs[n-1].epoch))
		}
		m.recs = append(m.recs, r)
	}
}

func (m *memLog) truncateTo(off Offset) {
	if off >= m.LogEndOffset() {
		return
	}
	if off <= m.start {
		m.truncateFullyAndStartAt(off)
		return
	}
	m.recs = m.recs[:off-m.start]
	for len(m.epochs) > 0 && m.epochs[len(m.epochs)-1].start >= off {
		m.epochs = m.epochs[:len(m.epochs)-1]
	}
}

func (m *memLog) truncateFullyAndStartAt(off Offset) {
	m.start, m.recs, m.epochs = off, nil, nil
}

// deleteBefore advances the log start offset (retention, DeleteRecords).
func (m *memLog) deleteBefore(off Offset) {
	if off <= m.start {
		return
	}
	if off >= m.LogEndOffset() {
		latest := m.LatestEpoch()
		m.truncateFullyAndStartAt(off)
		if latest >= 0 {
			m.epochs = []epochEntry{{epoch: latest, start: off}}
		}
		return
	}
	m.recs = m.recs[off-m.start:]
	m.start = off
	i := 0
	for i < len(m.epochs) && m.epochs[i].start <= off {
		i++
	}
	if i > 0 {
		covering := epochEntry{epoch: m.epochs[i-1].epoch, start: off}
		m.epochs = append([]epochEntry{covering}, m.epochs[i:]...)
	}
}

// read returns up to max records from off (a fetch).
func (m *memLog) read(off Offset, max int) []record {
	if off < m.start || off >= m.LogEndOffset() {
		return nil
	}
	recs := m.recs[off-m.start:]
	if len(recs) > max {
		recs = recs[:max]
	}
	return append([]record(nil), recs...)
}

func (m *memLog) at(off Offset) (record, bool) {
	if off < m.start || off >= m.LogEndOffset() {
		return record{}, false
	}
	return m.recs[off-m.start], true
}

// String summarizes the log as start offset and epoch runs, e.g.
// "[0: e1x3 e2x2] leo=5".
func (m *memLog) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%d:", m.start)
	for i := 0; i < len(m.recs); {
		j := i
		for j < len(m.recs) && m.recs[j].epoch == m.recs[i].epoch {
			j++
		}
		fmt.Fprintf(&b, " e%dx%d", m.recs[i].epoch, j-i)
		i = j
	}
	fmt.Fprintf(&b, "] leo=%d", m.LogEndOffset())
	return b.String()
}

func TestReplicaMemLogEpochCache(t *testing.T) {
	t.Parallel()
	m := &memLog{}
	m.append(record{1, 1}, record{1, 2}, record{3, 3}, record{3, 4}, record{5, 5})
	cases := []struct {
		epoch     LeaderEpoch
		wantEpoch LeaderEpoch
		wantEnd   Offset
	}{
		{-1, -1, -1}, {0, -1, -1}, {1, 1, 2}, {2, 1, 2}, {3, 3, 4}, {4, 3, 4}, {5, 5, 5}, {6, -1, -1},
	}
	for _, c := range cases {
		e, end := m.EndOffsetForEpoch(c.epoch)
		if e != c.wantEpoch || end != c.wantEnd {
			t.Errorf("EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d)", c.epoch, e, end, c.wantEpoch, c.wantEnd)
		}
	}
	m.truncateTo(3)
	if got := m.String(); got != "[0: e1x2 e3x1] leo=3" || m.LatestEpoch() != 3 {
		t.Fatalf("after truncate: %s latest %d", got, m.LatestEpoch())
	}
	m.deleteBefore(1)
	if e, end := m.EndOffsetForEpoch(1); e != 1 || end != 2 || m.epochs[0].start != 1 {
		t.Fatalf("after deleteBefore: (%d, %d) %v", e, end, m.epochs)
	}
}
