package broker

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Admission control: which connections are accepted, and how many request
// bytes the broker holds at once. The settings are Kafka's (KIP-402 for
// max.connections, KIP-612 for max.connection.creation.rate), resolved
// once into limits whenever the broker settings change.

// limits are the admission settings as typed values.
type limits struct {
	// maxConns and maxPerIP bound the open client connections, in total
	// and from one address; perIP holds max.connections.per.ip.overrides.
	maxConns int
	maxPerIP int
	perIP    map[netip.Addr]int
	// connRate is max.connection.creation.rate, in connections a second.
	connRate int
	// queuedRequests and queuedBytes bound the requests read but not yet
	// answered (queued.max.requests, queued.max.request.bytes; a byte
	// budget of zero or less is unlimited).
	queuedRequests int
	queuedBytes    int64
}

// resolveLimits reads the admission settings from s. Values were
// validated when they were set, so a value that does not parse falls back
// to its default; a host name in the overrides that does not resolve is
// left out.
func resolveLimits(s *settings) *limits {
	num := func(name string, def int64) int64 { return s.brokerInt64(name, def) }
	l := &limits{
		maxConns:       int(num("max.connections", math.MaxInt32)),
		maxPerIP:       int(num("max.connections.per.ip", math.MaxInt32)),
		connRate:       int(num("max.connection.creation.rate", math.MaxInt32)),
		queuedRequests: int(num("queued.max.requests", 500)),
		queuedBytes:    num("queued.max.request.bytes", defaultQueuedBytes),
	}
	l.perIP, _ = parseIPOverrides(s.broker("max.connections.per.ip.overrides").value, net.LookupHost)
	return l
}

// defaultQueuedBytes is Sluice's default queued.max.request.bytes. Kafka's
// is -1 (unlimited), which lets a burst of producers grow the heap without
// bound; Sluice defaults to the largest single request Kafka accepts
// (socket.request.max.bytes), so any one valid request still fits.
const defaultQueuedBytes = 100 << 20

// limitFor is the connection limit for addr.
func (l *limits) limitFor(addr netip.Addr) int {
	if n, ok := l.perIP[addr]; ok {
		return n
	}
	return l.maxPerIP
}

// parseIPOverrides parses Kafka's max.connections.per.ip.overrides, a
// comma-separated list of host:count (an IPv6 address's colons are kept:
// the count follows the last one). Host names are resolved with lookup and
// apply to every address they resolve to.
func parseIPOverrides(v string, lookup func(string) ([]string, error)) (map[netip.Addr]int, error) {
	out := map[netip.Addr]int{}
	var errs []string
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		i := strings.LastIndexByte(item, ':')
		if i <= 0 {
			return nil, fmt.Errorf("%q is not host:count", item)
		}
		host := strings.Trim(item[:i], "[]")
		n, err := strconv.Atoi(item[i+1:])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: the count must be a non-negative integer", item)
		}
		if a, err := netip.ParseAddr(host); err == nil {
			out[a.Unmap()] = n
			continue
		}
		if lookup == nil {
			continue
		}
		addrs, err := lookup(host)
		if err != nil {
			errs = append(errs, host)
			continue
		}
		for _, s := range addrs {
			if a, err := netip.ParseAddr(s); err == nil {
				out[a.Unmap()] = n
			}
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("unresolved hosts %s", strings.Join(errs, ", "))
	}
	return out, nil
}

// validIPOverrides checks the syntax of max.connections.per.ip.overrides
// without resolving host names.
func validIPOverrides(v string) error {
	_, err := parseIPOverrides(v, nil)
	return err
}

// Reasons a new connection is refused, the label values of
// sluice_connections_rejected_total.
const (
	rejectMaxConns = "max_connections"
	rejectPerIP    = "max_connections_per_ip"
)

// connCounter counts the open client connections, in total and by remote
// address, and admits new ones within the limits. Its lock is never held
// across I/O.
type connCounter struct {
	mu struct {
		sync.Mutex
		total int
		perIP map[netip.Addr]int
	}
}

func newConnCounter() *connCounter {
	c := &connCounter{}
	c.mu.perIP = map[netip.Addr]int{}
	return c
}

// admit counts a new connection from addr, or returns the reason it is
// over a limit (and counts nothing). As in Kafka, the per-address limit is
// checked first, and a limit of n admits n connections.
func (c *connCounter) admit(addr netip.Addr, l *limits) (reason string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.mu.perIP[addr] >= l.limitFor(addr):
		return rejectPerIP, false
	case c.mu.total >= l.maxConns:
		return rejectMaxConns, false
	}
	c.mu.total++
	c.mu.perIP[addr]++
	return "", true
}

// done uncounts a connection admit counted.
func (c *connCounter) done(addr netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.total--
	if c.mu.perIP[addr]--; c.mu.perIP[addr] <= 0 {
		delete(c.mu.perIP, addr)
	}
}

// remoteAddr is the address a connection's per-address limit applies to;
// the zero Addr for connections that are not IP.
func remoteAddr(nc net.Conn) netip.Addr {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// tokenBucket paces connection creation (KIP-612): it holds up to one
// second's worth of tokens, refilled at rate a second, and a connection is
// accepted only with a token in hand. Kafka measures the rate over its
// quota window and delays the acceptor by the time the rate needs to fall
// back under the limit; a bucket of one second gives the same long-run
// rate with a burst of at most rate connections. Time is passed in, so
// tests drive it with a fake clock.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// delay returns how long to wait, from now, until a connection may be
// accepted at rate a second; zero means at once.
func (tb *tokenBucket) delay(now time.Time, rate int) time.Duration {
	if rate <= 0 {
		return time.Second // a rate of 0 accepts nothing; look again later
	}
	tb.refill(now, rate)
	if tb.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tb.tokens) / float64(rate) * float64(time.Second))
}

// take spends a token for a connection accepted at now.
func (tb *tokenBucket) take(now time.Time, rate int) {
	tb.refill(now, rate)
	tb.tokens--
}

func (tb *tokenBucket) refill(now time.Time, rate int) {
	burst := float64(max(rate, 1))
	if tb.last.IsZero() {
		tb.tokens, tb.last = burst, now
		return
	}
	if el := now.Sub(tb.last); el > 0 {
		tb.tokens = min(burst, tb.tokens+el.Seconds()*float64(rate))
		tb.last = now
	}
}

// budget is a weighted semaphore: size units, handed out first come,
// first served, so that a large request waiting is not overtaken forever
// by small ones. It bounds the requests (one unit each) and the request
// bytes the broker holds at once. A nil or unlimited budget never blocks.
//
// Small takes (at most small units) do not queue behind large ones while
// the units in use stay within size plus headroom: a consumer's fetch or a
// heartbeat is not held up by a flood of large produce requests waiting
// for the budget, and the memory held stays bounded by size + headroom.
type budget struct {
	size     int64 // <= 0: unlimited
	small    int64
	headroom int64
	mu       struct {
		sync.Mutex
		used    int64
		waiters []*budgetWaiter
	}
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when the n units are granted
}

// newBudget returns a budget of size units in which takes of at most
// small units share headroom units beyond size.
func newBudget(size, small, headroom int64) *budget {
	return &budget{size: size, small: small, headroom: headroom}
}

// fits reports whether n units can ever be granted at once.
func (b *budget) fits(n int64) bool { return b == nil || b.size <= 0 || n <= b.size }

// acquire takes n units, waiting while they are not free. n must fit. It
// fails only when ctx ends, and then holds nothing.
func (b *budget) acquire(ctx context.Context, n int64) error {
	if b == nil || b.size <= 0 || n <= 0 {
		return nil
	}
	b.mu.Lock()
	if (len(b.mu.waiters) == 0 && b.mu.used+n <= b.size) || (n <= b.small && b.mu.used+n <= b.size+b.headroom) {
		b.mu.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.mu.waiters = append(b.mu.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.releaseLocked(n)
	default:
		for i, x := range b.mu.waiters {
			if x == w {
				b.mu.waiters = append(b.mu.waiters[:i], b.mu.waiters[i+1:]...)
				break
			}
		}
		b.grantLocked() // the head may have changed
	}
	return ctx.Err()
}

// force takes n units at once even beyond the size: memory that already
// exists (a fetch response read from the log) is counted, so that what
// is read next waits for it.
func (b *budget) force(n int64) {
	if b == nil || b.size <= 0 || n <= 0 {
		return
	}
	b.mu.Lock()
	b.mu.used += n
	b.mu.Unlock()
}

// release gives back n units taken by acquire or force.
func (b *budget) release(n int64) {
	if b == nil || b.size <= 0 || n <= 0 {
		return
	}
	b.mu.Lock()
	b.releaseLocked(n)
	b.mu.Unlock()
}

func (b *budget) releaseLocked(n int64) {
	b.mu.used -= n
	b.grantLocked()
}

// grantLocked wakes the waiters at the head of the queue that now fit.
func (b *budget) grantLocked() {
	for len(b.mu.waiters) > 0 {
		w := b.mu.waiters[0]
		if b.mu.used+w.n > b.size {
			return
		}
		b.mu.used += w.n
		close(w.ready)
		b.mu.waiters = b.mu.waiters[1:]
	}
}

// contended reports whether anyone is waiting for units.
func (b *budget) contended() bool {
	if b == nil || b.size <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.mu.waiters) > 0
}

// inUse is the units currently taken.
func (b *budget) inUse() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.used
}

// admissionConfigDefs are the broker settings of admission control, with
// Kafka's names and defaults (except queued.max.request.bytes, see
// defaultQueuedBytes). The connection limits are dynamic, as in Kafka.
func admissionConfigDefs() []configDef {
	maxInt := strconv.Itoa(math.MaxInt32)
	return []configDef{
		{name: "max.connections", typ: typeInt, def: maxInt, validate: atLeast(0),
			doc: "Most client connections open at once; a new one over it is closed at once (Kafka blocks its acceptor instead)."},
		{name: "max.connections.per.ip", typ: typeInt, def: maxInt, validate: atLeast(0),
			doc: "Most connections open at once from one address; a new one over it is closed at once."},
		{name: "max.connections.per.ip.overrides", typ: typeString, def: "", validate: validIPOverrides,
			doc: "Per-address exceptions to max.connections.per.ip, as host:count,host:count (host names are resolved when the setting changes)."},
		{name: "max.connection.creation.rate", typ: typeInt, def: maxInt, validate: atLeast(0),
			doc: "Most new connections accepted a second; beyond it accepting is delayed, so new connections wait in the listen backlog (KIP-612)."},
		{name: "queued.max.requests", typ: typeInt, def: "500", validate: atLeast(1), readOnly: true,
			doc: "Most requests read but not yet answered, across connections; Fetch, JoinGroup and SyncGroup, which wait in Kafka's purgatory rather than its request queue, are not counted."},
		{name: "queued.max.request.bytes", typ: typeLong, def: strconv.Itoa(defaultQueuedBytes), validate: atLeast(-1), readOnly: true,
			doc: "Bytes of requests read but not yet done with, across connections; when spent, no socket is read until some are freed. A request larger than it closes its connection. -1 is unlimited (Kafka's default); Sluice defaults to 100 MiB."},
	}
}
