package metadata

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A lease is renewed every third of its TTL, as clientv3's own keepalive
// does, so that two renewals can fail before it is in danger. A failed
// renewal is retried after a random pause in [renewBackoffMin,
// renewBackoffMax), each attempt waiting at most renewAttemptMin or a third
// of the TTL, whichever is longer, and never past the lease's deadline.
const (
	renewBackoffMin = 200 * time.Millisecond
	renewBackoffMax = 500 * time.Millisecond
	renewAttemptMin = 500 * time.Millisecond
)

// errRenewDeadline is why a lease is given up when no renewal succeeded in
// time; it is logged, Err reports ErrLeaseLost.
var errRenewDeadline = errors.New("no keepalive succeeded before the lease's deadline")

// keepAlive starts the renewal goroutine of lease id, granted with ttl
// seconds by a Grant request sent at sent, and returns the handle that owns
// it. The lease is revoked if that is impossible.
//
// It renews with one KeepAliveOnce call at a time rather than clientv3's
// KeepAlive stream, because only then is the send time of each successful
// renewal known, and with it a deadline the server cannot beat
// (Registration.ValidUntil).
func (e *Etcd) keepAlive(id clientv3.LeaseID, sent time.Time, ttl int64) (*lease, error) {
	kctx, stop := context.WithCancel(e.base)
	l := newLease()
	l.extend(sent.Add(time.Duration(ttl) * time.Second))
	done := make(chan struct{})
	l.release = func() error {
		stop()
		<-done
		e.untrackLease(l)
		if errors.Is(l.err(), ErrLeaseLost) {
			return nil // nothing left to give back
		}
		return e.revoke(id)
	}
	l.expire = func() error { return e.revoke(id) }
	started := e.goTracked(func() {
		defer close(done)
		e.renewLoop(kctx, l, id, ttl)
	})
	if !started || !e.trackLease(l) {
		if !started {
			close(done)
		}
		_ = l.close()
		return nil, ErrClosed
	}
	return l, nil
}

// renewLoop renews lease id every third of its TTL until ctx ends. It ends
// l with ErrLeaseLost when the server reports the lease gone or the lease's
// deadline passes without a successful renewal.
func (e *Etcd) renewLoop(ctx context.Context, l *lease, id clientv3.LeaseID, ttl int64) {
	t := time.NewTimer(renewInterval(ttl))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		granted, err := e.renew(ctx, l, id, ttl)
		if err != nil {
			if ctx.Err() == nil && l.err() == nil { // not ended by Close
				e.log.Warn("lease lost", "lease", fmt.Sprintf("%x", int64(id)), "err", err)
				l.end(ErrLeaseLost)
			}
			return
		}
		ttl = granted
		t.Reset(renewInterval(ttl))
	}
}

// renew sends keepalives for lease id until one succeeds, moving l's
// deadline to its send time plus the TTL granted, and returns that TTL. It
// fails when the server says the lease is gone, when the deadline has
// passed, or when ctx ends.
func (e *Etcd) renew(ctx context.Context, l *lease, id clientv3.LeaseID, ttl int64) (int64, error) {
	attempt := max(renewInterval(ttl), renewAttemptMin)
	for failures := 0; ; failures++ {
		left := time.Until(l.validUntilTime())
		if left <= 0 {
			return 0, errRenewDeadline
		}
		sent := time.Now()
		actx, cancel := context.WithTimeout(ctx, min(left, attempt))
		resp, err := e.cli.KeepAliveOnce(actx, id)
		cancel()
		switch {
		case err == nil && resp.TTL > 0:
			if !l.extend(sent.Add(time.Duration(resp.TTL) * time.Second)) {
				return 0, ErrClosed // ended meanwhile by Close
			}
			return resp.TTL, nil
		case err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound):
			return 0, rpctypes.ErrLeaseNotFound
		case ctx.Err() != nil:
			return 0, ctx.Err()
		}
		if failures == 0 {
			e.log.Warn("lease keepalive failed, retrying", "lease", fmt.Sprintf("%x", int64(id)),
				"err", err, "valid_for", left.Round(time.Millisecond))
		}
		// Pausing past the deadline would only report the loss late.
		backoff := renewBackoffMin + rand.N(renewBackoffMax-renewBackoffMin)
		pause := time.NewTimer(max(0, min(backoff, time.Until(l.validUntilTime()))))
		select {
		case <-ctx.Done():
			pause.Stop()
			return 0, ctx.Err()
		case <-pause.C:
		}
	}
}

func renewInterval(ttl int64) time.Duration {
	return time.Duration(ttl) * time.Second / 3
}
