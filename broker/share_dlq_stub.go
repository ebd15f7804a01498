package broker

// TEMPORARY STUB (engineer D, share-d): engineer E's dead-letter writer
// (broker/share_dlq.go) is not on this branch yet; the integrator deletes
// this file when it merges.

import "github.com/sluicedev/sluice/coordinator/share"

// wakeDeadLetters tells the dead-letter writer that k has records in
// Archiving: a no-op in the stub.
func (b *Broker) wakeDeadLetters(k share.Key) { _ = k }
