package share

import (
	"reflect"
	"testing"
	"time"
)

// fuzzAcks decodes data into acknowledgement batches around the busy
// partition's window (offsets 10..27): four bytes a batch (first, length,
// types layout, type seed) plus per-offset type bytes.
func fuzzAcks(data []byte) (member string, acks []Ack) {
	if len(data) == 0 {
		return "a", nil
	}
	member = []string{"a", "b", "c"}[int(data[0])%3]
	data = data[1:]
	for len(data) >= 4 && len(acks) < 64 {
		first := int64(data[0]%40) - 2
		if data[0] >= 250 {
			first = int64(data[0]-250) << 60 // extreme offsets
		}
		last := first + int64(data[1]%24) - 2
		layout, seed := data[2]%4, data[3]
		data = data[4:]
		typ := func(b byte) AckType { return AckType(int(b%7) - 1) } // -1..5
		var types []AckType
		switch layout {
		case 1:
			types = []AckType{typ(seed)}
		case 2, 3:
			n := int(last - first + 1)
			if layout == 3 {
				n = int(seed % 30)
			}
			for i := 0; i < n && i < 64; i++ {
				b := seed
				if i < len(data) {
					b = data[i]
				}
				types = append(types, typ(b+byte(i)))
			}
		}
		acks = append(acks, Ack{FirstOffset: first, LastOffset: last, Types: types})
	}
	return member, acks
}

func FuzzSharePartitionAcknowledge(f *testing.F) {
	f.Add([]byte{0, 10, 3, 1, 1})
	f.Add([]byte{0, 10, 16, 2, 0, 2, 3, 1, 4, 0, 2, 3, 1, 4, 0, 2, 3, 1, 4})
	f.Add([]byte{1, 25, 2, 1, 2})
	f.Add([]byte{0, 19, 2, 1, 5, 18, 2, 1, 1})
	f.Add([]byte{2, 255, 255, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, cfg := busy(t)
		member, acks := fuzzAcks(data)
		before, v := p.State()
		stats := p.Stats()
		dl, _ := p.NextDeadline()
		letters := p.DeadLetters()
		now := at(time.Second)
		code := p.Acknowledge(now, member, acks)
		after, v2 := p.State()
		if code != 0 {
			d2, _ := p.NextDeadline()
			if v2 != v || !reflect.DeepEqual(before, after) || p.Stats() != stats || !d2.Equal(dl) ||
				!reflect.DeepEqual(letters, p.DeadLetters()) {
				t.Fatalf("ack %+v failed with %d but changed the partition", acks, code)
			}
			return
		}
		if ValidateAcks(acks, AckRenew) != 0 {
			t.Fatalf("malformed acks %+v succeeded", acks)
		}
		s := p.Stats()
		if live, n := s.Available+s.Acquired+s.Archiving, s.Available+s.Acquired+s.Acknowledged+s.Archiving+s.Archived; live > cfg.MaxRecordLocks || n > spanFactor*cfg.MaxRecordLocks {
			t.Fatalf("window %d", n)
		}
		if after.StartOffset < before.StartOffset {
			t.Fatalf("start offset moved back %d -> %d", before.StartOffset, after.StartOffset)
		}
		// The partition goes on working.
		p.Expire(at(time.Hour))
		if off, ok := p.FetchOffset(at(time.Hour)); ok {
			p.Acquire(at(time.Hour), "z", []LogBatch{lb(off, off+5)}, 10)
		}
		if st, _ := New(cfg, first(p.State())).State(); !reflect.DeepEqual(st, first(p.State())) {
			t.Fatalf("round trip after acks %+v", acks)
		}
	})
}
