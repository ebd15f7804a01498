package sharestate

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluicedev/sluice/coordinator/share"
)

// model is the offset-by-offset meaning of a state: what merge must keep.
type model map[int64]share.StateBatch

func (m model) apply(bs []share.StateBatch, start int64) {
	for _, b := range bs {
		for o := b.FirstOffset; o <= b.LastOffset; o++ {
			m[o] = b
		}
	}
	if start >= 0 {
		for o := range m {
			if o < start {
				delete(m, o)
			}
		}
	}
}

func (m model) check(t *testing.T, bs []share.StateBatch) {
	t.Helper()
	n := 0
	for i, b := range bs {
		if b.FirstOffset > b.LastOffset || (i > 0 && bs[i-1].LastOffset >= b.FirstOffset) {
			t.Fatalf("batches out of order or overlapping: %+v", bs)
		}
		if i > 0 && bs[i-1].LastOffset+1 == b.FirstOffset && sameRun(bs[i-1], b) {
			t.Fatalf("equal adjacent runs not joined: %+v", bs)
		}
		for o := b.FirstOffset; o <= b.LastOffset; o++ {
			w, ok := m[o]
			if !ok || !sameRun(w, b) {
				t.Fatalf("offset %d: stored %+v, model %+v (ok %v)", o, b, w, ok)
			}
			n++
		}
	}
	if n != len(m) {
		t.Fatalf("stored %d offsets, model has %d", n, len(m))
	}
}

// TestShareStateRandomMerge checks merge, normalize and prune against the
// offset-by-offset model under random writes, including overlapping sent
// batches.
func TestShareStateRandomMerge(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		m := model{}
		var stored []share.StateBatch
		start := int64(-1)
		for range 30 {
			var upd []share.StateBatch
			for range r.IntN(5) {
				f := r.Int64N(200)
				b := share.StateBatch{FirstOffset: f, LastOffset: f + r.Int64N(10), State: share.RecordState(r.IntN(5)), DeliveryCount: int16(r.IntN(3))}
				if r.IntN(4) == 0 {
					b.NotBefore = epoch.Add(time.Duration(r.IntN(3)) * time.Second)
				}
				upd = append(upd, b)
			}
			norm := normalize(upd)
			if r.IntN(5) == 0 {
				start = max(start, r.Int64N(200))
			}
			m.apply(norm, start)
			stored = merge(stored, norm, start)
			m.check(t, stored)
		}
	}
}

// TestShareStateRandomReplay checks that random writes, reloaded from the
// log and from a compacted log, give the states the coordinator served.
func TestShareStateRandomReplay(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	log := newMemLog()
	c := newLoaded(t, log, Config{SnapshotEvery: 4})
	keys := []share.Key{key(0), key(1), {Group: "h", TopicID: topicA, Partition: 0}}
	start := map[share.Key]int64{}
	for range 400 {
		k := keys[r.IntN(len(keys))]
		switch r.IntN(20) {
		case 0:
			deleteState(t, c, k)
			start[k] = 0
			continue
		case 1:
			st, _, _ := read(t, c, k, -1)
			initialize(t, c, k, st.StateEpoch+1, start[k])
			continue
		}
		st, _, _ := read(t, c, k, -1)
		f := start[k] + r.Int64N(50)
		upd := share.State{StateEpoch: st.StateEpoch, LeaderEpoch: -1, StartOffset: -1,
			Batches: []share.StateBatch{{FirstOffset: f, LastOffset: f + r.Int64N(5), State: share.RecordState(r.IntN(5)), DeliveryCount: int16(r.IntN(4))}}}
		if r.IntN(4) == 0 {
			start[k] += r.Int64N(10)
			upd.StartOffset = start[k]
		}
		if code := write(t, c, k, upd); code != 0 {
			t.Fatalf("write: %d", code)
		}
	}
	recs := log.records(0)
	for _, rs := range [][]Record{recs, compacted(recs)} {
		c2 := newLoaded(t, &memLog{parts: map[int32][]Record{0: rs}}, Config{SnapshotEvery: 4})
		for _, k := range keys {
			want, wf, _ := read(t, c, k, -1)
			got, gf, _ := read(t, c2, k, -1)
			if wf != gf || !sameState(got, want) {
				t.Fatalf("%v reloaded as %+v (found %v), served %+v (found %v)", k, got, gf, want, wf)
			}
		}
	}
}

// FuzzShareStateRecord decodes arbitrary keys and values: no panic, no
// allocation beyond what the bytes hold, and a decoded value re-encodes to
// bytes that decode to the same value.
func FuzzShareStateRecord(f *testing.F) {
	st := share.State{StateEpoch: 1, LeaderEpoch: 2, StartOffset: 3, Batches: []share.StateBatch{
		{FirstOffset: 3, LastOffset: 5, State: share.Acknowledged, DeliveryCount: 1, NotBefore: epoch}},
		DeadLetter: share.DeadLetterCursor{ProducerID: 9, ProducerEpoch: 1, Sequence: 4}}
	f.Add(recordKey(typeSnapshot, key(1)), snapshotValue(3, st))
	f.Add(recordKey(typeUpdate, key(2)), updateValue(3, delta{leaderEpoch: 1, startOffset: -1, batches: st.Batches}))
	f.Add([]byte{0, 9}, []byte{})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		typ, _, ok, err := decodeKey(k)
		if err != nil || !ok {
			typ = int16(len(k) % 2)
		}
		val, err := decodeValue(typ, v, DefaultMaxBatches)
		if err != nil {
			return
		}
		if len(val.batches)*minBatchBytes > len(v) {
			t.Fatalf("%d batches from %d bytes", len(val.batches), len(v))
		}
		var re []byte
		if typ == typeSnapshot {
			s := share.State{StateEpoch: val.stateEpoch, LeaderEpoch: val.leaderEpoch, StartOffset: val.startOffset, Batches: val.batches}
			if val.deadLetter != nil {
				s.DeadLetter = *val.deadLetter
			}
			re = snapshotValue(val.snapEpoch, s)
		} else {
			re = updateValue(val.snapEpoch, delta{leaderEpoch: val.leaderEpoch, startOffset: val.startOffset, batches: val.batches, deadLetter: val.deadLetter})
		}
		again, err := decodeValue(typ, re, DefaultMaxBatches)
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if !bytes.Equal(re, func() []byte {
			if typ == typeSnapshot {
				s := share.State{StateEpoch: again.stateEpoch, LeaderEpoch: again.leaderEpoch, StartOffset: again.startOffset, Batches: again.batches}
				if again.deadLetter != nil {
					s.DeadLetter = *again.deadLetter
				}
				return snapshotValue(again.snapEpoch, s)
			}
			return updateValue(again.snapEpoch, delta{leaderEpoch: again.leaderEpoch, startOffset: again.startOffset, batches: again.batches, deadLetter: again.deadLetter})
		}()) {
			t.Fatal("decode -> encode -> decode is not stable")
		}
	})
}

// TestShareStateReloadUnderWrites writes from several goroutines while the
// partition is unloaded and loaded again from its log over and over; when
// all is quiet, what the coordinator serves must be exactly what its log
// rebuilds (memory never ahead of the log, no write of an old load landing
// after a new load read the log).
func TestShareStateReloadUnderWrites(t *testing.T) {
	t.Parallel()
	log := newMemLog()
	c := newLoaded(t, log, Config{SnapshotEvery: 3})
	keys := []share.Key{key(0), key(1), key(2)}
	stop := make(chan struct{})
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[r.IntN(len(keys))]
				f := r.Int64N(100)
				st := share.State{LeaderEpoch: -1, StartOffset: -1, Batches: []share.StateBatch{
					{FirstOffset: f, LastOffset: f + r.Int64N(4), State: share.RecordState(r.IntN(5)), DeliveryCount: int16(r.IntN(3))}}}
				write(t, c, k, st) // NOT_COORDINATOR and load in progress are expected
			}
		}()
	}
	calls := func() int {
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.calls
	}
	for range 20 {
		c.Unload(0)
		tok := c.BeginLoad(0)
		if err := c.LoadFrom(tok, source(log.records(0))); err != nil {
			t.Fatal(err)
		}
		before := calls()
		waitFor(t, func() bool { return calls() > before+2 }) // writes land between reloads
	}
	close(stop)
	for range 4 {
		<-done
	}
	c2 := newLoaded(t, &memLog{parts: map[int32][]Record{0: log.records(0)}}, Config{SnapshotEvery: 3})
	for _, k := range keys {
		want, wf, code := read(t, c, k, -1)
		got, gf, code2 := read(t, c2, k, -1)
		if code != 0 || code2 != 0 || wf != gf || !sameState(got, want) {
			t.Fatalf("%v: served %+v (found %v, code %d), log rebuilds %+v (found %v, code %d)", k, want, wf, code, got, gf, code2)
		}
	}
}
