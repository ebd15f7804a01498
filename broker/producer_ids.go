package broker

import (
	"context"
	"fmt"
	"sync"

	"github.com/sluicedev/sluice/metadata"
)

// producerIDBlock is how many producer ids one etcd round trip reserves.
const producerIDBlock = 1000

// producerIDs hands out producer ids from blocks reserved in etcd, so ids are
// unique across brokers and restarts without an etcd write per producer.
type producerIDs struct {
	meta metadata.Store
	mu   struct {
		sync.Mutex
		next, end int64
	}
}

func newProducerIDs(meta metadata.Store) *producerIDs { return &producerIDs{meta: meta} }

func (p *producerIDs) next(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.next >= p.mu.end {
		first, err := p.meta.AllocateProducerIDs(ctx, producerIDBlock)
		if err != nil {
			return 0, fmt.Errorf("reserve producer ids: %w", err)
		}
		p.mu.next, p.mu.end = first, first+producerIDBlock
	}
	id := p.mu.next
	p.mu.next++
	return id, nil
}
