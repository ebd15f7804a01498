package broker

import (
	"context"
	"math/rand/v2"
	"time"
)

// Registration outages. A broker whose etcd lease ends without its asking
// (etcd unreachable for longer than broker.session.timeout.ms, or the lease
// revoked behind its back) stays up: it keeps retrying and registers again
// with the same Incarnation as soon as etcd answers, taking over its old
// record if that is still there. The new registration has a new, larger
// epoch, so the controller handles the broker as one that restarted (see
// controller_loop.go): records naming it leader or ISR member from before
// are rewritten with a bumped leader epoch, and it rejoins ISRs only by
// catching up. The broker itself gives up leading at any epoch from before
// the new registration, as a restarted broker never resumes an old one.

// Re-registration attempts are bounded by reregisterAttempt and spaced by
// a random pause in [reregisterBackoffMin, reregisterBackoffMax).
const (
	reregisterAttempt    = 5 * time.Second
	reregisterBackoffMin = 250 * time.Millisecond
	reregisterBackoffMax = time.Second
)

// keepRegistered registers the broker again each time its registration is
// lost, until ctx ends.
func (b *Broker) keepRegistered(ctx context.Context) {
	for {
		reg := b.reg.Load()
		select {
		case <-ctx.Done():
			return
		case <-reg.Lost():
		}
		if ctx.Err() != nil || b.leaving.Load() {
			return
		}
		lostAt := time.Now()
		b.log.Warn("lost the etcd lease: no longer registered; registering again as soon as etcd answers", "err", reg.Err(), "epoch", reg.Epoch())
		for attempt := 0; ctx.Err() == nil; attempt++ {
			actx, cancel := context.WithTimeout(ctx, reregisterAttempt)
			next, err := b.meta.RegisterBroker(actx, b.regInfo, b.regTTL)
			cancel()
			if err == nil {
				b.reg.Store(next)
				_ = reg.Close() // already ended; releases nothing remote
				b.log.Info("registered again", "epoch", next.Epoch(), "previous_epoch", reg.Epoch(),
					"unregistered_for", time.Since(lostAt).Round(time.Millisecond))
				b.stepDownStaleLeaders()
				b.signalCluster()
				break
			}
			if attempt == 0 || attempt%20 == 0 {
				b.log.Warn("registering again failed; retrying", "attempt", attempt+1, "err", err)
			}
			sleepCtx(ctx, reregisterBackoffMin+rand.N(reregisterBackoffMax-reregisterBackoffMin))
		}
	}
}

// stepDownStaleLeaders stops leading every hosted partition whose record
// predates the current registration; the controller re-elects at a new
// epoch (possibly this broker again).
func (b *Broker) stepDownStaleLeaders() {
	epoch := b.registrationEpoch()
	for _, ts := range b.topics.all() {
		for _, part := range ts.partitions() {
			if part == nil {
				continue
			}
			b.transitions.Lock()
			b.coordinatorsOnTransition(part, part.rep.stepDownIfBefore(epoch))
			b.transitions.Unlock()
		}
	}
}
