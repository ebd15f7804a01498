package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// attrDeleteHorizon is attributes bit 6 (KIP-534): FirstTimestamp holds
// the time after which the log cleaner may remove the batch's tombstones
// or, for a control batch, the batch itself.
const attrDeleteHorizon = 0x40

// Control record key types (Kafka's ControlRecordType): the two
// transaction markers. Later Kafka versions define more types (KRaft's
// LEADER_CHANGE and snapshot records, ...); ParseMarker reports those as
// ErrUnknownControlType.
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

var (
	// ErrNotControl is returned by ParseMarker for a batch whose control
	// attribute (bit 5) is not set.
	ErrNotControl = errors.New("batch: not a control batch")
	// ErrEmptyControl is returned by ParseMarker for a control batch with no
	// record: Kafka's cleaner once left such batches behind for removed
	// markers, and readers ignore them.
	ErrEmptyControl = errors.New("batch: control batch without a record")
	// ErrUnknownControlType is returned by ParseMarker for a well-formed
	// control record whose type is neither ABORT nor COMMIT, such as a
	// control record type added by a later Kafka version. It is not
	// damage: callers ignore the batch rather than misread it as a marker.
	ErrUnknownControlType = errors.New("batch: unknown control record type")
	// ErrCompressed is returned by functions that read or rewrite records
	// in place for a compressed batch, which they cannot read without a
	// codec (control batches are never compressed).
	ErrCompressed = errors.New("batch: compressed batch")
)

// controlKeySize is a ControlRecordKey v0: int16 version, int16 type.
// markerValueSize is an EndTxnMarker v0: int16 version, int32 epoch.
const (
	controlKeySize  = 4
	markerValueSize = 6
)

// ParseMarker reads the transaction marker in b, one whole v2 control
// batch as the transaction coordinator has partition leaders write it
// (KIP-98): uncompressed, one record whose key is a ControlRecordKey
// (int16 version, int16 type: 0 ABORT, 1 COMMIT) and whose value is an
// EndTxnMarker (int16 version, int32 coordinator epoch). Newer key and
// value versions are read the same way, as Kafka does (fields are only
// ever appended). It decodes without kmsg so storage can use it, checks
// every length against b, and never panics.
//
// Errors: ErrShort or ErrInvalid for a damaged batch or record;
// ErrNotControl; ErrCompressed; ErrEmptyControl (no record);
// ErrUnknownControlType for a valid control record of another type. The
// CRC is not checked here (batch.Check does that).
func ParseMarker(b []byte) (commit bool, coordinatorEpoch int32, err error) {
	rec, err := controlRecord(b)
	if err != nil {
		return false, 0, err
	}
	key, value, err := recordKeyValue(rec)
	if err != nil {
		return false, 0, err
	}
	if key == nil || len(key) < controlKeySize {
		return false, 0, fmt.Errorf("%w: control record key of %d bytes", ErrInvalid, len(key))
	}
	be := binary.BigEndian
	if v := int16(be.Uint16(key)); v < 0 {
		return false, 0, fmt.Errorf("%w: control record key version %d", ErrInvalid, v)
	}
	typ := int16(be.Uint16(key[2:]))
	if typ != ControlAbort && typ != ControlCommit {
		return false, 0, fmt.Errorf("%w: %d", ErrUnknownControlType, typ)
	}
	if value == nil || len(value) < markerValueSize {
		return false, 0, fmt.Errorf("%w: transaction marker value of %d bytes", ErrInvalid, len(value))
	}
	if v := int16(be.Uint16(value)); v < 0 {
		return false, 0, fmt.Errorf("%w: transaction marker version %d", ErrInvalid, v)
	}
	return typ == ControlCommit, int32(be.Uint32(value[2:])), nil
}

// controlRecord returns the bytes of the first record of the control
// batch b (without its length prefix).
func controlRecord(b []byte) ([]byte, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	if h.Length < minLength || h.Size() > len(b) {
		return nil, fmt.Errorf("%w: length %d for %d bytes", ErrShort, h.Length, len(b))
	}
	if !h.Control() {
		return nil, ErrNotControl
	}
	if h.Codec() != None {
		return nil, fmt.Errorf("%w: control batch with codec %s", ErrCompressed, h.Codec())
	}
	if h.NumRecords <= 0 {
		return nil, ErrEmptyControl
	}
	recs := b[HeaderSize:h.Size()]
	n, used := readVarint(recs)
	if used <= 0 || n <= 0 || n > int64(len(recs)-used) {
		return nil, fmt.Errorf("%w: record length %d with %d bytes left", ErrInvalid, n, len(recs)-max(used, 0))
	}
	return recs[used : used+int(n)], nil
}

// recordKeyValue splits a record body (after its length) into key and
// value (nil when null) and checks that its headers end exactly at the
// end of the body, as Kafka's DefaultRecord.readFrom does.
func recordKeyValue(rec []byte) (key, value []byte, err error) {
	r := varintReader{b: rec}
	if len(r.b) < 1 {
		return nil, nil, fmt.Errorf("%w: empty record", ErrInvalid)
	}
	r.b = r.b[1:] // attributes
	r.varint()    // timestamp delta
	r.varint()    // offset delta
	key = r.bytes()
	value = r.bytes()
	headers := r.varint()
	if r.err == nil && (headers < 0 || headers > int64(len(r.b))) {
		r.err = fmt.Errorf("%w: %d headers", ErrInvalid, headers)
	}
	for i := int64(0); i < headers && r.err == nil; i++ {
		if k := r.bytes(); k == nil && r.err == nil {
			r.err = fmt.Errorf("%w: null header key", ErrInvalid)
		}
		r.bytes()
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d bytes after the record's headers", ErrInvalid, len(r.b))
	}
	return key, value, r.err
}

// varintReader reads Kafka's zigzag varints and varint-prefixed byte
// strings from b; the first failure sticks in err and later reads return
// zero values.
type varintReader struct {
	b   []byte
	err error
}

func (r *varintReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := readVarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint", ErrInvalid)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes reads a length-prefixed byte string; length -1 is null (nil).
func (r *varintReader) bytes() []byte {
	n := r.varint()
	if r.err != nil || n == -1 {
		return nil
	}
	if n < 0 || n > int64(len(r.b)) {
		r.err = fmt.Errorf("%w: length %d with %d bytes left", ErrInvalid, n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// readVarint decodes a zigzag varint of at most 10 bytes; n <= 0 means
// the bytes are short or overlong.
func readVarint(b []byte) (v int64, n int) { return binary.Varint(b) }

// DeleteHorizon returns the time (Unix milliseconds) after which the log
// cleaner may drop this batch's tombstones or, for a control batch, the
// batch itself, when attributes bit 6 is set (KIP-534); ok is false
// otherwise.
func (h Header) DeleteHorizon() (ms int64, ok bool) {
	if h.Attributes&attrDeleteHorizon == 0 {
		return 0, false
	}
	return h.FirstTimestamp, true
}

// SetDeleteHorizon returns a copy of the uncompressed batch b with its
// delete horizon set to ms (KIP-534): attributes bit 6, FirstTimestamp =
// ms, and every record's timestamp delta rewritten so each record keeps
// its timestamp; Length and CRC are recomputed. The log cleaner uses it to
// start the delete.retention.ms wait of a transaction marker whose
// transaction has no records left. b must be exactly one batch; a
// compressed batch gives ErrCompressed.
func SetDeleteHorizon(b []byte, ms int64) ([]byte, error) {
	h, err := Check(b)
	if err != nil {
		return nil, err
	}
	if h.Codec() != None {
		return nil, ErrCompressed
	}
	out := make([]byte, HeaderSize, len(b)+8*int(min(h.NumRecords, 1<<10)))
	copy(out, b[:HeaderSize])
	recs := b[HeaderSize:]
	for i := int32(0); i < h.NumRecords; i++ {
		n, used := readVarint(recs)
		if used <= 0 || n <= 0 || n > int64(len(recs)-used) {
			return nil, fmt.Errorf("%w: record %d length", ErrInvalid, i)
		}
		body := recs[used : used+int(n)]
		recs = recs[used+int(n):]
		if len(body) < 1 {
			return nil, fmt.Errorf("%w: record %d empty", ErrInvalid, i)
		}
		delta, dn := readVarint(body[1:])
		if dn <= 0 {
			return nil, fmt.Errorf("%w: record %d timestamp", ErrInvalid, i)
		}
		newDelta := h.FirstTimestamp + delta - ms
		var tmp [binary.MaxVarintLen64]byte
		td := binary.PutVarint(tmp[:], newDelta)
		size := 1 + td + len(body) - 1 - dn
		if size > math.MaxInt32 {
			return nil, fmt.Errorf("%w: record %d too large", ErrInvalid, i)
		}
		out = binary.AppendVarint(out, int64(size))
		out = append(out, body[0])
		out = append(out, tmp[:td]...)
		out = append(out, body[1+dn:]...)
	}
	if len(recs) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last record", ErrInvalid, len(recs))
	}
	be := binary.BigEndian
	be.PutUint32(out[posLength:], uint32(len(out)-lengthEnd))
	be.PutUint16(out[posAttributes:], uint16(h.Attributes)|attrDeleteHorizon)
	be.PutUint64(out[posFirstTimestamp:], uint64(ms))
	be.PutUint32(out[posCRC:], crc32.Checksum(out[posAttributes:], castagnoli))
	return out, nil
}

// EndOffset returns the offset after the last whole batch in blob (a run
// of batches as Read returns them), reading only headers; ok is false when
// blob holds no whole batch. Fetch uses it as the upper bound of the
// aborted transactions it sends with an inline read.
func EndOffset(blob []byte) (end int64, ok bool) {
	for len(blob) > 0 {
		b, rest, err := Next(blob)
		if err != nil {
			break
		}
		h, err := ParseHeader(b)
		if err != nil || h.LastOffsetDelta < 0 {
			break
		}
		end, ok = h.NextOffset(), true
		blob = rest
	}
	return end, ok
}
