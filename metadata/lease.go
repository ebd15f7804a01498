package metadata

import (
	"sync"
	"sync/atomic"
	"time"
)

// neverExpires is the ValidUntil, relative to the lease's creation, of a
// lease that no clock can run out: Memory's, which ends only when told to.
// Two centuries fit an int64 of nanoseconds with room to spare.
const neverExpires = 200 * 365 * 24 * time.Hour

// lease is the part of Registration and Leadership that does not depend on
// the store: a "lost" channel closed exactly once, the reason it was
// closed, and an idempotent release of the underlying resources.
type lease struct {
	lost    chan struct{}
	endOnce sync.Once
	// born is when the lease handle was made. Deadlines are kept as offsets
	// from it, so that they carry born's monotonic clock reading and a step
	// of the wall clock cannot stretch them.
	born time.Time
	// validUntil is the lower bound on the server-side expiry (see
	// Registration.ValidUntil), in nanoseconds after born. It is written
	// under mu, so that no renewal can move it forward after end, and read
	// without the lock.
	validUntil atomic.Int64
	mu         struct {
		sync.Mutex
		err error
	}

	closeOnce sync.Once
	closeErr  error
	// release stops the keepalive and gives the lease back. It is set by the
	// store before the lease is handed out and called at most once.
	release func() error
	// expire simulates the lease expiring on the server, for tests.
	expire func() error
}

func newLease() *lease {
	return &lease{lost: make(chan struct{}), born: time.Now()}
}

// end records why the lease ended (first caller wins), pulls validUntil
// back to now if it was later (a revoked or abandoned lease is not valid for
// whatever TTL its last renewal granted), and closes lost.
func (l *lease) end(err error) {
	l.endOnce.Do(func() {
		l.mu.Lock()
		l.mu.err = err
		if now := int64(time.Since(l.born)); l.validUntil.Load() > now {
			l.validUntil.Store(now)
		}
		l.mu.Unlock()
		close(l.lost)
	})
}

// extend moves validUntil forward to t, unless the lease has ended or t is
// not later (a slow renewal answered after a newer one must not pull it
// back). It reports whether the lease is still live.
func (l *lease) extend(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.err != nil {
		return false
	}
	if d := int64(t.Sub(l.born)); d > l.validUntil.Load() {
		l.validUntil.Store(d)
	}
	return true
}

func (l *lease) validUntilTime() time.Time {
	return l.born.Add(time.Duration(l.validUntil.Load()))
}

func (l *lease) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.err
}

// close ends the lease as ErrClosed before releasing it, so that the
// keepalive goroutine noticing the stream stop does not report a loss.
func (l *lease) close() error {
	l.closeOnce.Do(func() {
		l.end(ErrClosed)
		if l.release != nil {
			l.closeErr = l.release()
		}
	})
	return l.closeErr
}

// Registration is a broker's presence in the cluster: the broker record
// lives exactly as long as the lease behind it. The store keeps the lease
// alive in a goroutine owned by the Registration until Close or loss.
type Registration struct {
	broker Broker
	epoch  int64
	l      *lease
}

// Broker returns the registered record, with Epoch set to r.Epoch(): the
// value Brokers and WatchBrokers report for this registration.
func (r *Registration) Broker() Broker { return r.broker }

// Epoch returns the broker epoch: the store revision at which this
// registration wrote its broker record, equal to Broker.Epoch as Brokers and
// WatchBrokers report it. It grows with every registration of any node, so
// a restarted broker always has a larger epoch than its previous
// incarnation, also when it took the record over (KIP-380 uses it to fence
// requests from zombie brokers).
func (r *Registration) Epoch() int64 { return r.epoch }

// ValidUntil is a lower bound on when the registration's lease expires on
// the etcd server if no further keepalive succeeds: the time the last
// successful keepalive request was sent plus the TTL the server granted. A
// broker compares it with its clock to stop acting as partition leader
// before the cluster can have elected another (the server cannot expire the
// lease earlier than this). The bound assumes the local clock and the etcd
// leader's advance at the same rate; it does not depend on their agreeing.
// The time carries a monotonic clock reading, so comparing it with
// time.Now() is not fooled by a step of the wall clock.
//
// The bound is about expiry only: a revoke ends the lease at once. Close
// revokes, and so does a takeover by a restart with the same Incarnation,
// which is sound only because that restart means this process is gone.
// Once the registration has ended (Lost is closed) ValidUntil is no later
// than the moment it ended. Memory's registrations, which never expire by
// themselves, report a time centuries ahead while live. Safe to call from
// any goroutine; it is an atomic load.
func (r *Registration) ValidUntil() time.Time { return r.l.validUntilTime() }

// Lost returns a channel that is closed when the registration ends: the
// server reported the lease gone, or ValidUntil passed without a successful
// renewal (Err reports ErrLeaseLost, and the broker record is gone or about
// to go), or Close was called (Err reports ErrClosed). A broker that sees a
// loss it did not cause must stop acting as a cluster member until it has
// registered again.
func (r *Registration) Lost() <-chan struct{} { return r.l.lost }

// Err returns nil while the registration is live, then why it ended.
func (r *Registration) Err() error { return r.l.err() }

// Close stops the keepalive and revokes the lease, which removes the
// broker record at once instead of after the TTL. Idempotent; safe to call
// after a loss.
func (r *Registration) Close() error { return r.l.close() }

// Leadership is a won controller election. It lasts until Close or until
// its lease is lost, after which the node must stop acting as controller.
type Leadership struct {
	nodeID int32
	epoch  int64
	l      *lease
}

// NodeID returns the elected node.
func (l *Leadership) NodeID() int32 { return l.nodeID }

// Epoch returns the controller epoch: the store revision at which this node
// entered the election. It is larger than the epoch of every earlier
// controller, so writes stamped with it can fence a deposed controller.
func (l *Leadership) Epoch() int64 { return l.epoch }

// Lost returns a channel closed when the leadership ends (Err says why:
// ErrLeaseLost, or ErrClosed after Close).
func (l *Leadership) Lost() <-chan struct{} { return l.l.lost }

// Err returns nil while the leadership is held, then why it ended.
func (l *Leadership) Err() error { return l.l.err() }

// Close resigns, letting the next candidate win at once. Idempotent.
func (l *Leadership) Close() error { return l.l.close() }
