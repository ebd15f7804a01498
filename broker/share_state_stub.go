package broker

// TEMPORARY STUB (engineer D, share-d): engineer B's share-state client
// (broker/share_state.go) is not on this branch yet. This in-memory
// stand-in lets the share-partition manager run; the integrator deletes
// this file when B's implementation merges.

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/sluicedev/sluice/coordinator/share"
)

// errShareStateFenced means a newer state epoch or leader epoch exists:
// reload (contract of broker/share_state.go).
var errShareStateFenced = errors.New("broker: share state fenced")

// shareStateStubStore is the stub's memory, one per broker (temporary).
var shareStateStubStore sync.Map // *Broker -> *stubShareStates

type stubShareStates struct {
	mu sync.Mutex
	m  map[share.Key]share.State
}

func (b *Broker) stubShareStates() *stubShareStates {
	v, _ := shareStateStubStore.LoadOrStore(b, &stubShareStates{m: map[share.Key]share.State{}})
	return v.(*stubShareStates)
}

// readShareState returns the stored state of k; found false for none.
func (b *Broker) readShareState(ctx context.Context, k share.Key) (st share.State, found bool, err error) {
	s := b.stubShareStates()
	s.mu.Lock()
	defer s.mu.Unlock()
	st, found = s.m[k]
	st.Batches = slices.Clone(st.Batches)
	return st, found, ctx.Err()
}

// writeShareState stores st as k's state.
func (b *Broker) writeShareState(ctx context.Context, k share.Key, st share.State) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := b.stubShareStates()
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[k]; ok && old.LeaderEpoch > st.LeaderEpoch {
		return errShareStateFenced
	}
	st.Batches = slices.Clone(st.Batches)
	s.m[k] = st
	return nil
}

// deleteShareGroupState is a stub (engineer C's side of B's contract).
func (b *Broker) deleteShareGroupState(ctx context.Context, group string, topics []string) error {
	_, _ = group, topics
	return ctx.Err()
}
