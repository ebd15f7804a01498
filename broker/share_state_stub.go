package broker

// TEMPORARY STUB (engineer C, issue 10): deleteShareGroupState is engineer
// B's (broker/share_state.go, see docs/share-groups-contract.md). This file
// only lets the share-group membership work build on its own branch; the
// integrator deletes it when B's share_state.go lands.

import "context"

// deleteShareGroupState removes the state of every partition of topics of
// group. Stub: there is no share state yet, so there is nothing to delete.
func (b *Broker) deleteShareGroupState(ctx context.Context, group string, topics []string) error {
	_, _, _ = group, topics, b
	return ctx.Err()
}
