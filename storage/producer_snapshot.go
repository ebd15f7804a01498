package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
)

// Producer snapshot encoding; see doc.go. Version 2 ("SPS2") adds each
// producer's coordinator epoch and ongoing transaction, and the completed
// transactions whose markers were not yet below the high watermark;
// version 1 ("SPS1") files are still read.
const (
	snapshotMagicV1  = "SPS1"
	snapshotMagicV2  = "SPS2"
	snapshotSuffix   = ".snapshot"
	snapshotEntryMin = 8 + 2 + 8 + 1          // v1: id, epoch, last timestamp, n
	snapshotTxnBytes = 4 + 8                  // v2 adds: coordinator epoch, transaction first offset
	snapshotBatch    = 4 + 4 + 8 + 8          // per remembered batch
	snapshotUnrepl   = 8 + 8                  // per unreplicated transaction
	snapshotHeader   = 4 + 8 + 4              // magic, offset, producer count
	snapshotMin      = snapshotHeader + 4 + 4 // v2: ... unreplicated count, CRC
)

// snapshotData is a decoded producer snapshot.
type snapshotData struct {
	state  producerState
	offset int64
	unrepl []completedTxn
}

// encode serializes the state as of offset, with the completed
// transactions still waiting for the high watermark, sorted by producer id
// so equal states give equal bytes.
func (p *producerState) encode(offset int64, unrepl []completedTxn) []byte {
	ids := make([]int64, 0, len(p.m))
	for id := range p.m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	be := binary.BigEndian
	b := make([]byte, 0, snapshotMin+len(ids)*(snapshotEntryMin+snapshotTxnBytes+producerWindow*snapshotBatch)+len(unrepl)*snapshotUnrepl)
	b = append(b, snapshotMagicV2...)
	b = be.AppendUint64(b, uint64(offset))
	b = be.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		e := p.m[id]
		b = be.AppendUint64(b, uint64(id))
		b = be.AppendUint16(b, uint16(e.Epoch))
		b = be.AppendUint64(b, uint64(e.LastTs))
		b = be.AppendUint32(b, uint32(e.CoordEpoch))
		b = be.AppendUint64(b, uint64(e.TxnFirst))
		b = append(b, byte(e.N))
		for _, m := range e.Recent[:e.N] {
			b = be.AppendUint32(b, uint32(m.FirstSeq))
			b = be.AppendUint32(b, uint32(m.LastSeq))
			b = be.AppendUint64(b, uint64(m.BaseOffset))
			b = be.AppendUint64(b, uint64(m.LastOffset))
		}
	}
	b = be.AppendUint32(b, uint32(len(unrepl)))
	for _, c := range unrepl {
		b = be.AppendUint64(b, uint64(c.first))
		b = be.AppendUint64(b, uint64(c.last))
	}
	return be.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decodeProducerSnapshot parses encode's output (or a version 1 file),
// checking every length against the input so damaged files cannot cause
// panics or huge allocations.
func decodeProducerSnapshot(b []byte) (snapshotData, error) {
	bad := func(why string) (snapshotData, error) {
		return snapshotData{}, fmt.Errorf("%w: producer snapshot: %s", errCheckpoint, why)
	}
	be := binary.BigEndian
	if len(b) < snapshotHeader+4 {
		return bad("bad header")
	}
	v2 := string(b[:4]) == snapshotMagicV2
	if !v2 && string(b[:4]) != snapshotMagicV1 {
		return bad("bad header")
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != be.Uint32(b[len(b)-4:]) {
		return bad("checksum mismatch")
	}
	d := snapshotData{offset: int64(be.Uint64(body[4:]))}
	count := int(be.Uint32(body[12:]))
	rest := body[snapshotHeader:]
	entryMin := snapshotEntryMin
	if v2 {
		entryMin += snapshotTxnBytes
	}
	if count > len(rest)/entryMin {
		return bad("entry count exceeds size")
	}
	d.state = newProducerState()
	d.state.m = make(map[int64]*producerEntry, count)
	for range count {
		if len(rest) < entryMin {
			return bad("truncated entry")
		}
		id := int64(be.Uint64(rest))
		e := newProducerEntry(int16(be.Uint16(rest[8:])))
		e.LastTs = int64(be.Uint64(rest[10:]))
		at := 18
		if v2 {
			e.CoordEpoch, e.TxnFirst = int32(be.Uint32(rest[18:])), int64(be.Uint64(rest[22:]))
			at += snapshotTxnBytes
			if e.TxnFirst < -1 {
				return bad("negative transaction offset")
			}
		}
		e.N = int(rest[at])
		rest = rest[entryMin:]
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
		d.state.m[id] = e
	}
	if v2 {
		if len(rest) < 4 {
			return bad("truncated transaction list")
		}
		n := int(be.Uint32(rest))
		rest = rest[4:]
		if n > len(rest)/snapshotUnrepl {
			return bad("transaction count exceeds size")
		}
		d.unrepl = make([]completedTxn, n)
		for i := range d.unrepl {
			d.unrepl[i] = completedTxn{first: int64(be.Uint64(rest)), last: int64(be.Uint64(rest[8:]))}
			rest = rest[snapshotUnrepl:]
		}
	}
	if len(rest) != 0 {
		return bad("trailing bytes")
	}
	return d, nil
}
