package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// peerPool carries the control requests one broker sends another outside
// replication: WriteTxnMarkers from a transaction coordinator to partition
// leaders, and AddPartitionsToTxn from partition leaders (and group
// coordinators) to transaction coordinators. Each request takes an idle
// connection to its peer, or dials a new one, and gives it back afterwards,
// so concurrent requests to one peer run on separate connections while
// peerConn stays single-user. A failed exchange closes its connection.
type peerPool struct {
	self int32
	mu   struct {
		sync.Mutex
		idle   map[int32][]*peerConn
		closed bool
	}
}

// peerIdlePerNode bounds the idle connections kept per peer; more
// concurrent requests dial extra connections that are closed after use.
const peerIdlePerNode = 4

// peerRequestTimeout bounds one control round trip (Kafka's
// request.timeout.ms default).
const peerRequestTimeout = 30 * time.Second

// errPeerUnknown means the destination broker is not registered.
var errPeerUnknown = errors.New("broker: peer not registered")

// errPoolClosed is returned once the broker is shutting down.
var errPoolClosed = errors.New("broker: peer pool closed")

func newPeerPool(self int32) *peerPool {
	pp := &peerPool{self: self}
	pp.mu.idle = map[int32][]*peerConn{}
	return pp
}

// roundTrip sends req to broker node and returns its response, within
// peerRequestTimeout and ctx.
func (pp *peerPool) roundTrip(ctx context.Context, b *Broker, node int32, req kmsg.Request) (kmsg.Response, error) {
	br, ok := b.brokers.get(node)
	if !ok {
		return nil, fmt.Errorf("broker %d: %w", node, errPeerUnknown)
	}
	addr := net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port)))
	for attempt := 0; ; attempt++ {
		pc, reused, err := pp.take(node)
		if err != nil {
			return nil, err
		}
		resp, err := pc.roundTrip(ctx, addr, req, time.Now().Add(peerRequestTimeout))
		if err == nil {
			pp.put(node, pc)
			return resp, nil
		}
		pc.close()
		// An idle connection may have died with its peer (a restart): try
		// once more on a new one before reporting the peer unreachable.
		if !reused || attempt > 0 || ctx.Err() != nil {
			return nil, err
		}
	}
}

// take returns an idle connection to node (reused) or a new, undialled one.
func (pp *peerPool) take(node int32) (pc *peerConn, reused bool, err error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.mu.closed {
		return nil, false, errPoolClosed
	}
	idle := pp.mu.idle[node]
	if n := len(idle); n > 0 {
		pc := idle[n-1]
		pp.mu.idle[node] = idle[:n-1]
		return pc, true, nil
	}
	return newPeerConn(pp.self, node), false, nil
}

func (pp *peerPool) put(node int32, pc *peerConn) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.mu.closed || len(pp.mu.idle[node]) >= peerIdlePerNode {
		pc.close()
		return
	}
	pp.mu.idle[node] = append(pp.mu.idle[node], pc)
}

// close closes the idle connections and refuses further requests;
// connections in use are closed when their request ends.
func (pp *peerPool) close() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.mu.closed = true
	for _, conns := range pp.mu.idle {
		for _, pc := range conns {
			pc.close()
		}
	}
	clear(pp.mu.idle)
}
