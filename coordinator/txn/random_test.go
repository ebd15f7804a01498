package txn

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTxnRandomConcurrentClients races clients on a few shared
// transactional ids (requests of every API and version, with stale and
// current epochs) against injected write and marker failures, clock
// advances and partition reloads. Afterwards, once everything settled,
// memory must be exactly what a replay of the log gives, every
// transaction must have completed, and no producer id's epoch may go
// backwards in the log.
func TestTxnRandomConcurrentClients(t *testing.T) {
	t.Parallel()
	seeds := []uint64{1, 2, 3}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			runRandomClients(t, seed)
		})
	}
}

func runRandomClients(t *testing.T, seed uint64) {
	h := newHarness(t)
	shared := []string{"s1", "s2"}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(seed, uint64(w)))
			cl := &randomClient{h: h, rnd: rnd}
			own := []string{fmt.Sprintf("c%d-a", w), fmt.Sprintf("c%d-b", w)}
			for range 400 {
				if rnd.IntN(5) == 0 {
					cl.step(shared[rnd.IntN(len(shared))])
				} else {
					cl.step(own[rnd.IntN(len(own))])
				}
			}
		}()
	}
	var chaos sync.WaitGroup
	chaos.Add(1)
	go func() {
		defer chaos.Done()
		rnd := rand.New(rand.NewPCG(seed, 99))
		for {
			select {
			case <-stop:
				return
			default:
			}
			switch rnd.IntN(6) {
			case 0:
				h.log.setFail(kerr.NotEnoughReplicas, 1)
			case 1:
				h.markers.setMode([]string{"ok", "fail"}[rnd.IntN(2)])
			case 2:
				h.clock.Advance(time.Duration(rnd.IntN(3000)) * time.Millisecond)
			case 3:
				p := int32(rnd.IntN(testPartitions))
				if rnd.IntN(3) == 0 {
					h.c.Unload(p)
				}
				_ = h.c.LoadFrom(h.c.BeginLoad(p, int32(rnd.IntN(100))), h.log.source(p))
			default:
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	wg.Wait()
	close(stop)
	chaos.Wait()

	h.log.setFail(nil, 0)
	h.markers.setMode("ok")
	for p := range int32(testPartitions) {
		if !h.c.Owns(p) {
			h.load(p, 1000)
		}
	}
	for range 5 {
		h.advance(15 * time.Second)
	}
	checkMemoryMatchesLog(t, h)
	checkEpochsMonotonic(t, h)
	st := h.c.Stats()
	t.Logf("seed %d: %+v, %d writes", seed, st, h.log.callCount())
	if st.Committed == 0 || st.Aborted == 0 {
		t.Fatalf("the run completed too little to mean anything: %+v", st)
	}
}

type randomClient struct {
	h   *harness
	rnd *rand.Rand
	// known is the producer each id last got, per this client.
	known map[string]producerRef
}

func (cl *randomClient) step(id string) {
	h, rnd := cl.h, cl.rnd
	if cl.known == nil {
		cl.known = make(map[string]producerRef)
	}
	p, ok := cl.known[id]
	if rnd.IntN(10) == 0 {
		p.epoch-- // a stale epoch now and then
	}
	op := rnd.IntN(10)
	if !ok {
		op = 0
	}
	fenced := func(code int16) {
		switch code {
		case kerr.ProducerFenced.Code, kerr.InvalidProducerEpoch.Code, kerr.InvalidProducerIDMapping.Code:
			delete(cl.known, id)
		}
	}
	switch op {
	case 0:
		r := initReq(id)
		r.TransactionTimeoutMillis = int32(1000 + rnd.IntN(5000))
		if rnd.IntN(3) == 0 && p.id > 0 {
			r.ProducerID, r.ProducerEpoch = p.id, p.epoch
		}
		if resp := h.c.InitProducerID(h.ctx, r); resp.ErrorCode == 0 {
			cl.known[id] = producerRef{id: resp.ProducerID, epoch: resp.ProducerEpoch}
		}
	case 1, 2, 3:
		r := kmsg.NewPtrAddPartitionsToTxnRequest()
		r.Version = 3
		r.TransactionalID, r.ProducerID, r.ProducerEpoch = id, p.id, p.epoch
		r.Topics = clientTopics(parseTPs(fmt.Sprintf("t-%d", rnd.IntN(4))))
		fenced(h.c.AddPartitionsToTxn(h.ctx, r).Topics[0].Partitions[0].ErrorCode)
	case 4:
		r := kmsg.NewPtrAddPartitionsToTxnRequest()
		r.Version = 5
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = id, p.id, p.epoch, rnd.IntN(2) == 0
		tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "u", Partitions: []int32{int32(rnd.IntN(2))}}}
		r.Transactions = append(r.Transactions, tx)
		h.c.AddPartitionsToTxn(h.ctx, r)
	case 5, 6, 7:
		v := int16(4 + rnd.IntN(2))
		resp := h.c.EndTxn(h.ctx, endReq(v, id, p.id, p.epoch, rnd.IntN(3) != 0))
		if resp.ErrorCode == 0 && v >= 5 {
			cl.known[id] = producerRef{id: resp.ProducerID, epoch: resp.ProducerEpoch}
		}
		fenced(resp.ErrorCode)
	default:
		d := kmsg.NewPtrDescribeTransactionsRequest()
		d.TransactionalIDs = []string{id}
		h.c.DescribeTransactions(h.ctx, d)
		h.c.ListTransactions(h.ctx, kmsg.NewPtrListTransactionsRequest())
		h.c.Stats()
	}
}

func checkMemoryMatchesLog(t *testing.T, h *harness) {
	t.Helper()
	c := h.c
	for p := range int32(testPartitions) {
		replayed, _, _, err := c.replay(p, h.log.source(p))
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		ps := c.mu.parts[p]
		mem := make(map[string]meta)
		for id, tx := range ps.txns {
			if tx.pending != pendingNone {
				t.Errorf("%s still pending (%d) after settling", id, tx.pending)
			}
			if isPrepare(tx.m.state) {
				t.Errorf("%s still in %s after settling", id, tx.m.state)
			}
			if tx.durable {
				m := tx.m
				m.lastEpoch = -1
				mem[id] = m
			}
		}
		c.mu.Unlock()
		if !reflect.DeepEqual(mem, replayed) {
			t.Fatalf("partition %d: memory and log differ:\nmemory %+v\nlog    %+v", p, mem, replayed)
		}
	}
}

func checkEpochsMonotonic(t *testing.T, h *harness) {
	t.Helper()
	for p := range int32(testPartitions) {
		last := make(map[int64]int16)
		for _, r := range h.log.records(p) {
			if r.Value == nil {
				continue
			}
			m, _, err := decodeValue(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := last[m.producerID]; ok && m.epoch < e {
				t.Fatalf("producer %d went from epoch %d back to %d", m.producerID, e, m.epoch)
			}
			last[m.producerID] = m.epoch
		}
	}
}
