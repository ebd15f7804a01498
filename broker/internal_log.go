package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage"
)

// markerKind says whether an internal record is a transaction marker.
type markerKind int8

const (
	markerNone markerKind = iota
	markerCommit
	markerAbort
)

// internalRecord is one record of an internal topic partition as a
// coordinator replays it: a data record with its batch's producer, or a
// transaction marker (marker set, no key or value).
type internalRecord struct {
	key, value    []byte
	producerID    int64
	transactional bool
	marker        markerKind
}

// scanInternalLog streams the records of an internal topic partition, from
// its log start to the log end offset it sees when it starts, one read of at
// most 1 MiB (and one decoded batch) in memory at a time. Each control batch
// yields one record with its marker; control records of other types are
// skipped. It stops early when yield returns false.
func scanInternalLog(codecs *protocol.Codecs, l *storage.Log, yield func(internalRecord) bool) error {
	off, end := l.LogStartOffset(), l.LogEndOffset()
	for off < end {
		data, err := l.Read(off, 1<<20, end)
		if err != nil {
			return fmt.Errorf("read offset %d: %w", off, err)
		}
		if len(data) == 0 {
			return nil
		}
		for len(data) > 0 {
			one, rest, err := batch.Next(data)
			if err != nil {
				return fmt.Errorf("batch at %d: %w", off, err)
			}
			data = rest
			h, _ := batch.ParseHeader(one)
			off = h.NextOffset()
			_, recs, err := protocol.DecodeCompactedRecords(one, codecs, maxDecodedBatch)
			if err != nil {
				return fmt.Errorf("decode batch at %d: %w", h.BaseOffset, err)
			}
			if h.Control() {
				if m := controlMarker(recs); m != markerNone && !yield(internalRecord{producerID: h.ProducerID, transactional: true, marker: m}) {
					return nil
				}
				continue
			}
			for _, r := range recs {
				if !yield(internalRecord{key: r.Key, value: r.Value, producerID: h.ProducerID, transactional: h.Transactional()}) {
					return nil
				}
			}
		}
	}
	return nil
}

// controlMarker reads a control batch's record: COMMIT or ABORT, or
// markerNone for other control record types.
func controlMarker(recs []kmsg.Record) markerKind {
	if len(recs) == 0 {
		return markerNone
	}
	var key kmsg.ControlRecordKey
	if err := key.ReadFrom(recs[0].Key); err != nil {
		return markerNone
	}
	switch key.Type {
	case kmsg.ControlRecordKeyTypeCommit:
		return markerCommit
	case kmsg.ControlRecordKeyTypeAbort:
		return markerAbort
	default:
		return markerNone
	}
}
