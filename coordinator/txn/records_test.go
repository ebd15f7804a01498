package txn

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Records are Kafka's TransactionLogKey v0 / TransactionLogValue v1, and
// decode back to the same state (but lastEpoch, which the log lacks).
func TestTxnRecordsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range []meta{
		{producerID: 7, prevProducerID: -1, nextProducerID: -1, epoch: 0, lastEpoch: -1, timeoutMs: 60000,
			state: stateEmpty, startMs: -1, lastUpdateMs: 1},
		{producerID: 7, prevProducerID: 7, nextProducerID: -1, epoch: 3, lastEpoch: -1, timeoutMs: 1000,
			state: stateOngoing, partitions: parseTPs("a-0", "a-2", "b-1"), startMs: 5, lastUpdateMs: 6, tv: 2},
		{producerID: 7, prevProducerID: 7, nextProducerID: 9, epoch: 32767, lastEpoch: -1, timeoutMs: 1000,
			state: statePrepareCommit, partitions: parseTPs("a-0"), startMs: 5, lastUpdateMs: 6, tv: 2},
		{producerID: 9, prevProducerID: 7, nextProducerID: -1, epoch: 0, lastEpoch: -1, timeoutMs: 1000,
			state: stateCompleteAbort, startMs: 5, lastUpdateMs: 7, tv: 2},
	} {
		r := stateRecord("txn", m)
		id, ok, err := decodeKey(r.Key)
		if err != nil || !ok || id != "txn" {
			t.Fatalf("key: %q %v %v", id, ok, err)
		}
		if v := int16(binary.BigEndian.Uint16(r.Value)); v != 1 {
			t.Fatalf("value version %d, want 1", v)
		}
		got, dead, err := decodeValue(r.Value)
		if err != nil || dead {
			t.Fatalf("decode %s: %v dead=%v", m.state, err, dead)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
		}
		// Kafka writes a null partition list for Empty, a list otherwise.
		var v kmsg.TxnMetadataValue
		if err := v.ReadFrom(r.Value); err != nil {
			t.Fatal(err)
		}
		if (v.Topics == nil) != (m.state == stateEmpty) {
			t.Fatalf("%s: topics nil=%v", m.state, v.Topics == nil)
		}
	}
}

// A value v0 (Kafka before KIP-915) decodes with the tagged fields at
// their defaults; a Dead value is a delete; unknown states and versions
// are malformed; unknown key versions are skipped.
func TestTxnRecordsDecodeOldAndOdd(t *testing.T) {
	t.Parallel()
	v := kmsg.NewTxnMetadataValue()
	v.Version, v.ProducerID, v.ProducerEpoch, v.State = 0, 5, 2, stateCompleteCommit
	v.Topics, v.StartTimestamp, v.LastUpdateTimestamp = []kmsg.TxnMetadataValueTopic{}, 10, 11
	m, dead, err := decodeValue(v.AppendTo(nil))
	if err != nil || dead || m.producerID != 5 || m.prevProducerID != -1 || m.nextProducerID != -1 || m.tv != 0 {
		t.Fatalf("v0: %+v dead=%v err=%v", m, dead, err)
	}
	v.State = stateDead
	if _, dead, err := decodeValue(v.AppendTo(nil)); !dead || err != nil {
		t.Fatalf("Dead: dead=%v err=%v", dead, err)
	}
	v.State = 42
	if _, _, err := decodeValue(v.AppendTo(nil)); !errors.Is(err, errMalformed) {
		t.Fatalf("state 42: %v", err)
	}
	v.State, v.Version = stateEmpty, 9
	if _, _, err := decodeValue(v.AppendTo(nil)); !errors.Is(err, errMalformed) {
		t.Fatalf("version 9: %v", err)
	}
	if _, _, err := decodeValue([]byte{0, 1, 2}); !errors.Is(err, errMalformed) {
		t.Fatalf("short value: %v", err)
	}
	if _, ok, err := decodeKey([]byte{0, 3, 0, 1, 'x'}); ok || err != nil {
		t.Fatalf("key version 3: ok=%v err=%v", ok, err)
	}
	if _, _, err := decodeKey([]byte{0}); !errors.Is(err, errMalformed) {
		t.Fatalf("short key: %v", err)
	}
}

// LoadFrom keeps the last record per id, honours tombstones, and skips
// what does not parse or belongs to another partition, without failing.
func TestTxnLoadReplaysLastState(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := PartitionFor("a", testPartitions)
	var other string
	for _, id := range []string{"b", "c", "d", "e"} {
		if PartitionFor(id, testPartitions) != p {
			other = id
			break
		}
	}
	ongoing := meta{producerID: 5, prevProducerID: 5, nextProducerID: -1, epoch: 1, lastEpoch: -1, timeoutMs: 60000,
		state: stateOngoing, partitions: parseTPs("t-0"), startMs: testStart.UnixMilli(), lastUpdateMs: testStart.UnixMilli()}
	empty := ongoing
	empty.state, empty.partitions, empty.startMs, empty.epoch = stateEmpty, nil, -1, 0
	h.log.mu.Lock()
	h.log.logs[p] = []Record{
		stateRecord("a", empty),
		{Key: []byte{0}},                           // malformed key
		{Key: recordKey("a"), Value: []byte{0, 1}}, // malformed value: skipped, a keeps its state
		stateRecord(other, empty),                  // another partition's id
		stateRecord("gone", empty),
		tombstone("gone"),
		stateRecord("a", ongoing),
	}
	h.log.mu.Unlock()
	h.load(p, 3)
	m, _, ok := h.state("a")
	if !ok || m.state != stateOngoing || m.epoch != 1 || m.lastEpoch != -1 {
		t.Fatalf("a: %+v ok=%v", m, ok)
	}
	if _, _, ok := h.state("gone"); ok {
		t.Fatal("a tombstoned id was loaded")
	}
	if _, _, ok := h.state(other); ok && PartitionFor(other, testPartitions) == p {
		t.Fatal("foreign id loaded")
	}
}

// A load whose source fails stays loading for a retry; a load overtaken by
// an unload or another BeginLoad is discarded.
func TestTxnLoadFailuresAndSupersededLoads(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := PartitionFor("a", testPartitions)
	token := h.c.BeginLoad(p, 2)
	broken := errors.New("segment unreadable")
	err := h.c.LoadFrom(token, func(yield func(Record) bool) error { return broken })
	if !errors.Is(err, broken) || !h.c.Loading(token) || !h.c.Owns(p) {
		t.Fatalf("failed load: err=%v loading=%v", err, h.c.Loading(token))
	}
	expectCode(t, "init while loading", h.init("a", time.Minute).ErrorCode, kerr.CoordinatorLoadInProgress)
	if err := h.c.LoadFrom(token, h.log.source(p)); err != nil {
		t.Fatalf("retried load: %v", err)
	}
	if h.c.Loading(token) {
		t.Fatal("a finished load is still loading")
	}
	if err := h.c.LoadFrom(token, h.log.source(p)); !errors.Is(err, ErrLoadSuperseded) {
		t.Fatalf("second LoadFrom with one token: %v", err)
	}

	old := h.c.BeginLoad(p, 3)
	newer := h.c.BeginLoad(p, 4)
	if err := h.c.LoadFrom(old, h.log.source(p)); !errors.Is(err, ErrLoadSuperseded) {
		t.Fatalf("overtaken load: %v", err)
	}
	h.c.Unload(p)
	if err := h.c.LoadFrom(newer, h.log.source(p)); !errors.Is(err, ErrLoadSuperseded) || h.c.Owns(p) {
		t.Fatalf("load after unload: %v owns=%v", err, h.c.Owns(p))
	}
	if err := h.c.LoadFrom(LoadToken{partition: 99}, h.log.source(p)); err == nil {
		t.Fatal("a partition outside NumPartitions loaded")
	}
	if h.c.BeginLoad(99, 1).Partition() != 99 || h.c.Loading(LoadToken{partition: 99}) {
		t.Fatal("BeginLoad outside NumPartitions")
	}
}
