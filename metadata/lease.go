package metadata

import (
	"sync"
)

// lease is the part of Registration and Leadership that does not depend on
// the store: a "lost" channel closed exactly once, the reason it was
// closed, and an idempotent release of the underlying resources.
type lease struct {
	lost    chan struct{}
	endOnce sync.Once
	mu      struct {
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
	return &lease{lost: make(chan struct{})}
}

// end records why the lease ended (first caller wins) and closes lost.
func (l *lease) end(err error) {
	l.endOnce.Do(func() {
		l.mu.Lock()
		l.mu.err = err
		l.mu.Unlock()
		close(l.lost)
	})
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

// Broker returns the registered record.
func (r *Registration) Broker() Broker { return r.broker }

// Epoch returns the broker epoch: the store revision at which this
// registration was created. It grows with every registration of any node,
// so a restarted broker always has a larger epoch than its previous
// incarnation (KIP-380 uses it to fence requests from zombie brokers).
func (r *Registration) Epoch() int64 { return r.epoch }

// Lost returns a channel that is closed when the registration ends: the
// lease expired or its keepalive stream died (Err reports ErrLeaseLost, and
// the broker record is gone or about to go), or Close was called (Err
// reports ErrClosed). A broker that sees a loss it did not cause must stop
// acting as a cluster member until it has registered again.
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
