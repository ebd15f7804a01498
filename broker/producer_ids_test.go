package broker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sluicedev/sluice/metadata"
)

// TestProducerIDsUniqueUnderConcurrency draws ids from two brokers' blocks
// at once, across several reservations each: no id is handed out twice.
func TestProducerIDsUniqueUnderConcurrency(t *testing.T) {
	t.Parallel()
	store := metadata.NewMemory()
	a, b := newProducerIDs(store), newProducerIDs(store)
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for g := range 8 {
		p := a
		if g%2 == 1 {
			p = b
		}
		wg.Go(func() {
			for range 600 {
				id, err := p.next(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("producer id %d handed out twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 8*600 {
		t.Fatalf("%d distinct ids, want %d", len(seen), 8*600)
	}
}

// stuckStore is a store whose producer id reservations never answer, as
// with etcd unreachable, except that once `parallel` of them are in flight
// at the same time they all fail with errAllInFlight.
type stuckStore struct {
	metadata.Store
	parallel int
	mu       sync.Mutex
	inFlight int
	all      chan struct{}
}

var errAllInFlight = errors.New("every reservation was in flight at once")

func (s *stuckStore) AllocateProducerIDs(ctx context.Context, _ int64) (int64, error) {
	s.mu.Lock()
	if s.inFlight++; s.inFlight == s.parallel {
		close(s.all)
	}
	s.mu.Unlock()
	select {
	case <-s.all:
		return 0, errAllInFlight
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// TestProducerIDsBoundedWithoutEtcd checks that a reservation against an
// unreachable store gives up after its bound, for a caller whose own
// context has no deadline, and that concurrent callers wait for etcd side
// by side rather than in line behind the block's lock.
func TestProducerIDsBoundedWithoutEtcd(t *testing.T) {
	t.Parallel()
	one := newProducerIDs(&stuckStore{Store: metadata.NewMemory(), parallel: 2, all: make(chan struct{})})
	one.timeout = 50 * time.Millisecond
	if _, err := one.next(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next without etcd: %v, want a deadline error", err)
	}

	const n = 5
	p := newProducerIDs(&stuckStore{Store: metadata.NewMemory(), parallel: n, all: make(chan struct{})})
	p.timeout = 10 * time.Second // queued calls would time out one by one
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := p.next(context.Background()); !errors.Is(err, errAllInFlight) {
				t.Errorf("next: %v, want every reservation in flight at once", err)
			}
		})
	}
	wg.Wait()
}
