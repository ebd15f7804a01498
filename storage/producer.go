package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"

	"github.com/sluicedev/sluice/protocol/batch"
)

// producerWindow is how many recent batches per producer are remembered
// for duplicate detection; Kafka keeps 5, matching the client's maximum of
// 5 in-flight requests per connection with idempotence.
const producerWindow = 5

// batchMeta identifies one appended idempotent batch.
type batchMeta struct {
	FirstSeq, LastSeq      int32
	BaseOffset, LastOffset int64
}

// producerEntry is the state kept per producer id (Kafka's
// ProducerStateEntry without the transaction fields).
type producerEntry struct {
	Epoch  int16
	LastTs int64 // MaxTimestamp of the newest batch, for expiration
	N      int   // batches in use, oldest first
	Recent [producerWindow]batchMeta
}

func (e *producerEntry) push(m batchMeta) {
	if e.N == producerWindow {
		copy(e.Recent[:], e.Recent[1:])
		e.N--
	}
	e.Recent[e.N] = m
	e.N++
}

// producerState validates and records idempotent appends. It is a plain
// value guarded by Log.mu, with no I/O.
type producerState struct {
	m map[int64]*producerEntry
}

func newProducerState() producerState { return producerState{m: map[int64]*producerEntry{}} }

// inSequence reports whether next directly follows last, wrapping at
// math.MaxInt32 (Kafka's ProducerAppendInfo.inSequence).
func inSequence(last, next int32) bool {
	return int64(next) == int64(last)+1 || (next == 0 && last == math.MaxInt32)
}

// check validates a batch from a client (the leader path) against the
// stored state, following Kafka's ProducerAppendInfo and KIP-360. It
// returns the original batch when h is a retry of one of the last
// producerWindow batches.
func (p *producerState) check(h batch.Header) (dup batchMeta, isDup bool, err error) {
	e := p.m[h.ProducerID]
	if e == nil {
		// No state (new producer, or its state expired or was removed with
		// the log prefix): accept any sequence, as Kafka 2.5+ does.
		return batchMeta{}, false, nil
	}
	if h.ProducerEpoch < e.Epoch {
		return batchMeta{}, false, fmt.Errorf("%w: producer %d epoch %d is older than %d",
			ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.Epoch)
	}
	if h.Control() || h.BaseSequence == batch.NoSequence {
		return batchMeta{}, false, nil
	}
	if h.ProducerEpoch != e.Epoch {
		if h.BaseSequence != 0 {
			return batchMeta{}, false, fmt.Errorf("%w: producer %d new epoch %d must start at sequence 0, got %d",
				ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		return batchMeta{}, false, nil
	}
	last := h.LastSequence()
	for _, m := range e.Recent[:e.N] {
		if m.FirstSeq == h.BaseSequence && m.LastSeq == last {
			return m, true, nil
		}
	}
	lastSeq := int32(-1) // NO_SEQUENCE: only 0 follows it
	if e.N > 0 {
		lastSeq = e.Recent[e.N-1].LastSeq
	}
	if e.Epoch >= 0 && !inSequence(lastSeq, h.BaseSequence) {
		return batchMeta{}, false, fmt.Errorf("%w: producer %d epoch %d expected sequence %d, got %d",
			ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, batch.IncrementSequence(lastSeq, 1), h.BaseSequence)
	}
	return batchMeta{}, false, nil
}

// update records an appended batch whose final offsets are known. It runs
// for leader and follower appends and during recovery; a new epoch clears
// the remembered batches, as Kafka's maybeUpdateProducerEpoch does.
func (p *producerState) update(h batch.Header) {
	e := p.m[h.ProducerID]
	if e == nil {
		e = &producerEntry{Epoch: h.ProducerEpoch}
		p.m[h.ProducerID] = e
	}
	if h.ProducerEpoch != e.Epoch {
		e.Epoch, e.N = h.ProducerEpoch, 0
	}
	if !h.Control() && h.BaseSequence != batch.NoSequence {
		e.push(batchMeta{FirstSeq: h.BaseSequence, LastSeq: h.LastSequence(), BaseOffset: h.BaseOffset, LastOffset: h.LastOffset()})
	}
	e.LastTs = h.MaxTimestamp
}

// evictBelow forgets producers whose newest batch lies below the log start
// offset (Kafka's ProducerStateManager.truncateHead).
func (p *producerState) evictBelow(lso int64) {
	for id, e := range p.m {
		if e.N == 0 || e.Recent[e.N-1].LastOffset < lso {
			delete(p.m, id)
		}
	}
}

// expire forgets producers idle since before cutoff (milliseconds) and
// returns how many it dropped.
func (p *producerState) expire(cutoff int64) int {
	n := 0
	for id, e := range p.m {
		if e.LastTs < cutoff {
			delete(p.m, id)
			n++
		}
	}
	return n
}

// Producer snapshot encoding; see doc.go.
const (
	snapshotMagic    = "SPS1"
	snapshotSuffix   = ".snapshot"
	snapshotEntryMin = 8 + 2 + 8 + 1
	snapshotBatch    = 4 + 4 + 8 + 8
)

// encode serializes the state as of offset, sorted by producer id so equal
// states give equal bytes.
func (p *producerState) encode(offset int64) []byte {
	ids := make([]int64, 0, len(p.m))
	for id := range p.m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	be := binary.BigEndian
	b := make([]byte, 0, 16+len(ids)*(snapshotEntryMin+producerWindow*snapshotBatch)+4)
	b = append(b, snapshotMagic...)
	b = be.AppendUint64(b, uint64(offset))
	b = be.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		e := p.m[id]
		b = be.AppendUint64(b, uint64(id))
		b = be.AppendUint16(b, uint16(e.Epoch))
		b = be.AppendUint64(b, uint64(e.LastTs))
		b = append(b, byte(e.N))
		for _, m := range e.Recent[:e.N] {
			b = be.AppendUint32(b, uint32(m.FirstSeq))
			b = be.AppendUint32(b, uint32(m.LastSeq))
			b = be.AppendUint64(b, uint64(m.BaseOffset))
			b = be.AppendUint64(b, uint64(m.LastOffset))
		}
	}
	return be.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decodeProducerSnapshot parses encode's output, checking every length
// against the input so damaged files cannot cause panics or huge
// allocations.
func decodeProducerSnapshot(b []byte) (producerState, int64, error) {
	bad := func(why string) (producerState, int64, error) {
		return producerState{}, 0, fmt.Errorf("%w: producer snapshot: %s", errCheckpoint, why)
	}
	be := binary.BigEndian
	if len(b) < len(snapshotMagic)+8+4+4 || string(b[:4]) != snapshotMagic {
		return bad("bad header")
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != be.Uint32(b[len(b)-4:]) {
		return bad("checksum mismatch")
	}
	offset := int64(be.Uint64(body[4:]))
	count := int(be.Uint32(body[12:]))
	rest := body[16:]
	if count > len(rest)/snapshotEntryMin {
		return bad("entry count exceeds size")
	}
	p := producerState{m: make(map[int64]*producerEntry, count)}
	for range count {
		if len(rest) < snapshotEntryMin {
			return bad("truncated entry")
		}
		id := int64(be.Uint64(rest))
		e := &producerEntry{Epoch: int16(be.Uint16(rest[8:])), LastTs: int64(be.Uint64(rest[10:])), N: int(rest[18])}
		rest = rest[snapshotEntryMin:]
		if e.N > producerWindow || len(rest) < e.N*snapshotBatch {
			return bad("truncated batches")
		}
		for i := range e.N {
			e.Recent[i] = batchMeta{
				FirstSeq: int32(be.Uint32(rest)), LastSeq: int32(be.Uint32(rest[4:])),
				BaseOffset: int64(be.Uint64(rest[8:])), LastOffset: int64(be.Uint64(rest[16:])),
			}
			rest = rest[snapshotBatch:]
		}
		p.m[id] = e
	}
	if len(rest) != 0 {
		return bad("trailing bytes")
	}
	return p, offset, nil
}
