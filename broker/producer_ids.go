package broker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluicedev/sluice/metadata"
)

// producerIDBlock is how many producer ids one etcd round trip reserves.
const producerIDBlock = 1000

// producerIDReserveTimeout bounds one reservation: while etcd is
// unreachable an InitProducerId answers COORDINATOR_NOT_AVAILABLE (which
// clients retry) after this long instead of holding its connection.
const producerIDReserveTimeout = 5 * time.Second

// producerIDs hands out producer ids from blocks reserved in etcd, so ids are
// unique across brokers and restarts without an etcd write per producer.
// The lock is never held across the etcd round trip: callers that find the
// block used up each reserve one, and a block reserved by a caller that
// lost the race is dropped (ids are 64-bit; gaps cost nothing).
type producerIDs struct {
	meta    metadata.Store
	timeout time.Duration // producerIDReserveTimeout; shorter in tests
	mu      struct {
		sync.Mutex
		next, end int64
	}
}

func newProducerIDs(meta metadata.Store) *producerIDs {
	return &producerIDs{meta: meta, timeout: producerIDReserveTimeout}
}

func (p *producerIDs) next(ctx context.Context) (int64, error) {
	for {
		if id, ok := p.take(); ok {
			return id, nil
		}
		rctx, cancel := context.WithTimeout(ctx, p.timeout)
		first, err := p.meta.AllocateProducerIDs(rctx, producerIDBlock)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("reserve producer ids: %w", err)
		}
		p.mu.Lock()
		if p.mu.next >= p.mu.end {
			p.mu.next, p.mu.end = first, first+producerIDBlock
		}
		p.mu.Unlock()
	}
}

// take returns the next id of the reserved block, if any is left.
func (p *producerIDs) take() (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.next >= p.mu.end {
		return 0, false
	}
	id := p.mu.next
	p.mu.next++
	return id, true
}
