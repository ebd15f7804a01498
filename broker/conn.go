package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/storage/vfs"
)

// maxPipelined bounds how many requests of one connection may be decoded and
// handled ahead of their responses being written. Kafka clients keep at most
// five in flight per connection by default; the slack absorbs bursts.
const maxPipelined = 32

// Buffer recycling. A connection keeps the buffer its last Produce or Fetch
// frame was read into, and the buffers its fetches read record batches into,
// so steady traffic reads and answers without allocating. What it keeps is
// bounded by what the client really sent and asked for, and is let go as
// traffic shrinks or stops.
const (
	// keepSmall is kept whatever its use: below it, recycling is not worth
	// second-guessing.
	keepSmall = 256 << 10
	// A buffer above keepSmall is let go once it was filled to less than
	// 1/shrinkRatio: for a fetch read buffer at the first such use, for the
	// frame buffer after shrinkAfter such frames in a row (produce request
	// sizes swing widely with the client's batching).
	shrinkRatio = 4
	shrinkAfter = 16
	// idleRelease is how long a connection keeping more than keepSmall may
	// wait for its next request before it lets its buffers go.
	idleRelease = time.Second
	// maxReadBufs bounds the recycled fetch read buffers of a connection
	// (one per partition read).
	maxReadBufs = 16
	// spliceMin is the smallest record data of a partition that a fetch
	// response sends apart from its encoded frame, from the segment file
	// (sendfile) or the read buffer (writev); smaller data is copied into
	// the frame.
	spliceMin = 4 << 10
	// directWriteMin is the smallest fetch response with only in-memory
	// data that is written with writev, bypassing the connection's write
	// buffer; smaller ones are copied into it so they can share a write
	// system call with other responses. Responses with file spans always
	// go out directly.
	directWriteMin = 64 << 10
	// smallFrame is the largest kept frame buffer whose share of the
	// request budget a connection keeps while others wait for it.
	smallFrame = 64 << 10
)

// conn is one client connection. Requests are read, decoded and handled
// strictly one at a time, in order; responses are written in the same order by
// a second goroutine, which also runs each request's finish step. This lets
// produce requests pipelined on one connection share an fsync without
// reordering anything the client sees.
type conn struct {
	b      *Broker
	nc     net.Conn
	log    *slog.Logger
	remote string

	// frame is the buffer the next request is read into, and frameSmall
	// the number of frames in a row that used little of it; only readLoop
	// uses them.
	frame      []byte
	frameSmall int
	// frameMem is what c.frame holds of queued.max.request.bytes; only
	// readLoop uses it.
	frameMem int64
	// readBufs holds recycled buffers for fetch reads: the handler (on the
	// reader) takes them, the writer gives them back once the response
	// holding their bytes is written. readBufBytes is their total capacity.
	readBufs     chan []byte
	readBufBytes atomic.Int64

	// w is the response writer; only the writer goroutine (writeLoop and
	// the finish steps it runs) uses it.
	w *replyWriter

	// sendfile is set for TCP connections: fetches then find their
	// batches as spans of the segment files, which the writer sends with
	// sendfile(2). scratch is the buffer those lookups read headers into;
	// only the reader uses it.
	sendfile bool
	scratch  []byte

	validator protocol.Validator // produce batch checks; only the reader uses it
}

func (b *Broker) serveConn(ctx context.Context, nc net.Conn) {
	c := &conn{b: b, nc: nc, remote: nc.RemoteAddr().String(), readBufs: make(chan []byte, maxReadBufs)}
	_, c.sendfile = nc.(*net.TCPConn)
	c.log = b.log.With("remote", c.remote)
	b.metrics.connections.Inc()
	b.metrics.connectionsTotal.Inc()
	defer b.metrics.connections.Dec()

	replies := make(chan *request, maxPipelined)
	writerDone := make(chan struct{})
	if !b.goroutines.Go("conn-writer", func() {
		defer close(writerDone)
		c.writeLoop(ctx, replies)
	}) {
		nc.Close()
		return
	}
	c.readLoop(ctx, replies)
	c.dropFrame()
	close(replies)
	<-writerDone
	nc.Close()
	b.releaseShareSessions(c)
}

// readLoop reads, decodes and handles requests until the client hangs up,
// sends something unusable, or the broker shuts down.
func (c *conn) readLoop(ctx context.Context, replies chan<- *request) {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	maxFrame := int32(c.b.settings.brokerInt64("socket.request.max.bytes", 100<<20))
	idle := time.Duration(c.b.settings.brokerInt64("connections.max.idle.ms", 600000)) * time.Millisecond
	for {
		if ctx.Err() != nil {
			return
		}
		deadline := time.Now().Add(idle)
		c.releaseIfIdle(br, deadline)
		_ = c.nc.SetReadDeadline(deadline)
		h, err := c.admitFrame(ctx, br, maxFrame)
		if err != nil {
			c.logReadError(err)
			return
		}
		frame, err := protocol.ReadFrame(br, maxFrame, c.frame)
		c.frame = nil // the request aliases it until recycleFrame decides
		if err != nil {
			c.releaseHold(&h)
			c.logReadError(err)
			return
		}
		if !c.serve(ctx, frame, h, replies) {
			return
		}
	}
}

// errOverBudget means a request frame is larger than the whole of
// queued.max.request.bytes: it could never be read, so the connection is
// closed, as for a frame over socket.request.max.bytes.
var errOverBudget = errors.New("broker: request larger than queued.max.request.bytes")

// hold is what one request holds of the broker's request budgets: a
// queued.max.requests slot, and bytes of queued.max.request.bytes for its
// frame (frame) and for fetched data its response keeps in memory (resp).
type hold struct {
	slot        bool
	frame, resp int64
	decode      int64 // what the decoded request is counted for beyond its frame
}

// decodeFactor is how many times its frame's size a request other than
// Produce and Fetch counts against queued.max.request.bytes. kmsg decodes
// each list entry, a few bytes on the wire, into a struct of tens of
// bytes, so a frame of many tiny entries (a repetition attack) takes up to
// about 16 times its size in memory while it is handled; counting the
// wire bytes alone would let the budget be spent many times over. Produce
// and Fetch frames are mostly record bytes and partition entries, and are
// counted as they are.
const decodeFactor = 16

// decodeCharge is what a request of API key in a frame of n bytes counts
// for beyond the frame itself.
func decodeCharge(key int16, n int) int64 {
	if recyclable(key) {
		return 0
	}
	return int64(n) * (decodeFactor - 1)
}

// countsAsQueued reports whether requests of API key take a
// queued.max.requests slot. Fetch, JoinGroup and SyncGroup do not: their
// handlers wait for other clients (Kafka parks them in purgatory, outside
// its request queue), and counting them would let idle consumers, or a
// group larger than the limit, stall everyone else. Their bytes count.
func countsAsQueued(key int16) bool {
	const fetch, joinGroup, syncGroup = 1, 11, 14
	return key != fetch && key != joinGroup && key != syncGroup
}

// admitFrame waits for the next frame's size and API key and takes what
// the request will hold of the broker's budgets, before any of its body
// is read: while the budget is spent this connection is not read, and TCP
// pushes back on the client. From the frame's first byte the client has
// RequestReadTimeout to send the rest (not counting the wait for the
// budget), so a frame that stops half way does not hold its bytes
// forever. Frames the framing rejects (a bad size) are left to ReadFrame.
func (c *conn) admitFrame(ctx context.Context, br *bufio.Reader, maxFrame int32) (hold, error) {
	head, err := br.Peek(4)
	if err != nil {
		return hold{}, err
	}
	size := int32(binary.BigEndian.Uint32(head))
	frameTimeout := c.b.cfg.RequestReadTimeout
	_ = c.nc.SetReadDeadline(time.Now().Add(frameTimeout))
	if size < 2 || size > maxFrame {
		return hold{}, nil
	}
	head, err = br.Peek(6)
	if err != nil {
		return hold{}, err
	}
	key := int16(binary.BigEndian.Uint16(head[4:]))
	if !c.b.queued.bytes.fits(int64(size) + decodeCharge(key, int(size))) {
		return hold{}, fmt.Errorf("%w: %d bytes (API key %d)", errOverBudget, size, key)
	}
	h, err := c.reserve(ctx, key, int(size))
	if err != nil {
		return hold{}, err
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(frameTimeout))
	return h, nil
}

// reserve takes a request slot (for APIs that count) and n bytes for a
// frame of n bytes: the bytes c.frame already holds when it is large
// enough, else n new ones, c.frame being let go first. While other
// connections wait for the budget, a c.frame larger than smallFrame is let
// go too and this one queues behind them: a busy connection must not keep
// a large share for good. Small frames (fetches, metadata, heartbeats)
// keep theirs, so a consumer is not queued behind a flood of produce
// requests.
func (c *conn) reserve(ctx context.Context, key int16, n int) (hold, error) {
	var h hold
	if countsAsQueued(key) {
		if err := c.b.queued.requests.acquire(ctx, 1); err != nil {
			return h, err
		}
		h.slot = true
	}
	extra := decodeCharge(key, n)
	if cap(c.frame) >= n && (cap(c.frame) <= smallFrame || !c.b.queued.bytes.contended()) {
		if err := c.b.queued.bytes.acquire(ctx, extra); err != nil {
			c.releaseHold(&h)
			return hold{}, err
		}
		h.frame, h.decode, c.frameMem = c.frameMem, extra, 0
		return h, nil
	}
	c.dropFrame()
	if err := c.b.queued.bytes.acquire(ctx, int64(n)+extra); err != nil {
		c.releaseHold(&h)
		return hold{}, err
	}
	h.frame, h.decode = int64(n), extra
	return h, nil
}

// releaseHold gives back what h holds and clears it; it is safe to call
// again.
func (c *conn) releaseHold(h *hold) {
	if c.b == nil {
		return
	}
	if h.slot {
		c.b.queued.requests.release(1)
	}
	c.b.queued.bytes.release(h.frame + h.resp + h.decode)
	*h = hold{}
}

// dropFrame lets the kept frame buffer go, and the budget it holds.
func (c *conn) dropFrame() {
	if c.b != nil {
		c.b.queued.bytes.release(c.frameMem)
	}
	c.frame, c.frameMem = nil, 0
}

// serve decodes and handles one frame and queues its reply. It reports
// false when the connection must close: an undecodable request, a failed
// handler, shutdown, or a panic anywhere in decoding or handling, which is
// logged with the request's API key and version and ends only this
// connection.
func (c *conn) serve(ctx context.Context, frame []byte, h hold, replies chan<- *request) (ok bool) {
	var hdr *protocol.Header
	queued := false
	defer func() {
		if p := recover(); p != nil {
			c.recovered("handle", hdr, p)
			ok = false
		}
		if !queued {
			c.releaseHold(&h) // nothing else will
		}
	}()
	r, err := c.decode(frame)
	if err != nil {
		c.log.Debug("closing connection on undecodable request", "err", err)
		c.b.metrics.badRequests.Inc()
		return false
	}
	if r == nil {
		return true
	}
	hdr = &r.hdr
	if fn := c.b.hooks.handle.Load(); fn != nil {
		(*fn)(r)
	}
	r.hold, h = h, hold{} // r's hold from here on
	defer func() {
		if !queued {
			c.releaseHold(&r.hold)
		}
	}()
	queued = c.handle(ctx, r, frame, replies)
	return queued
}

// connHooks let tests in package broker inject faults into the request
// path of a running broker; outside tests they are nil.
type connHooks struct {
	// handle runs on the reader before a request's handler.
	handle atomic.Pointer[func(*request)]
	// write runs on the writer before a response is encoded.
	write atomic.Pointer[func(*request)]
}

// recovered logs, once, a panic met while serving a request (hdr is nil
// when it came before the header was parsed) and counts it. The
// connection is then closed: its state may be inconsistent, but nothing
// it shares with other connections is touched here.
func (c *conn) recovered(stage string, hdr *protocol.Header, p any) {
	c.b.metrics.panics.Inc()
	attrs := []any{"stage", stage, "panic", fmt.Sprint(p), "stack", string(debug.Stack())}
	if hdr != nil {
		attrs = append(attrs, "key", hdr.Key, "api", apiName(hdr.Key), "version", hdr.Version)
	}
	c.log.Error("closing connection: panic while serving a request", attrs...)
}

// recycleFrame keeps frame for the next request when nothing decoded from
// it can still be in use. kmsg requests alias their frame for []byte fields
// (records, group metadata), so this is limited to APIs whose handlers are
// known to be done with the request when they return: Produce appends the
// records to the log before returning and its finish step and response hold
// no request bytes; a Fetch request has no byte fields. Every other frame is
// left to the garbage collector, as a handler may keep parts of it.
//
// It reports whether the frame was kept.
func (c *conn) recycleFrame(key int16, frame []byte) bool {
	c.frame = nil
	if !recyclable(key) {
		return false
	}
	if keep(cap(frame), len(frame)) {
		c.frameSmall = 0
	} else if c.frameSmall++; c.frameSmall >= shrinkAfter {
		c.frameSmall = 0
		return false
	}
	c.frame = frame[:0]
	return true
}

// recyclable reports whether a request of API key is done with its frame
// when its handler returns (see recycleFrame).
func recyclable(key int16) bool {
	const produce, fetch = 0, 1
	return key == produce || key == fetch
}

// doneWithFrame runs when r's handler has returned. A Produce or Fetch
// frame is no longer needed: the connection keeps it for its next request,
// with the budget it holds, or its budget is given back now. Kafka too
// frees a request's buffer once its handler returns; holding a produce
// frame through the acks=all wait would let producers spend the budget
// that the follower fetches ending that wait need. Other frames stay
// counted until their response is written. Fetched data the response keeps
// in memory (the records not sent from the segment files) is counted from
// now until it is written.
func (c *conn) doneWithFrame(r *request, frame []byte) {
	if fr, ok := r.resp.(*fetchReply); ok {
		for _, rb := range fr.bufs {
			r.hold.resp += int64(cap(rb.buf))
		}
		c.b.queued.bytes.force(r.hold.resp)
	}
	if !recyclable(r.hdr.Key) {
		return
	}
	if c.recycleFrame(r.hdr.Key, frame) {
		c.frameMem = r.hold.frame
	} else {
		c.b.queued.bytes.release(r.hold.frame)
	}
	r.hold.frame = 0
}

// keep reports whether a buffer of capacity capacity whose last use filled
// used bytes is worth recycling.
func keep(capacity, used int) bool {
	return capacity <= keepSmall || used >= capacity/shrinkRatio
}

// releaseIfIdle lets the connection's recycled buffers go when it keeps
// more than keepSmall, or a frame buffer holding part of the request
// budget, and the client sends nothing for idleRelease, so that an idle
// connection does not pin the memory of its busiest moment nor the budget
// other connections wait for. It waits only when no request is already
// buffered, and never past the connection's idle deadline.
func (c *conn) releaseIfIdle(br *bufio.Reader, deadline time.Time) {
	if br.Buffered() >= 4 || (c.retained() <= keepSmall && c.frameMem == 0) {
		return
	}
	if wait := time.Now().Add(idleRelease); wait.Before(deadline) {
		deadline = wait
	}
	_ = c.nc.SetReadDeadline(deadline)
	if _, err := br.Peek(4); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return // data arrived, or a real error the next read reports again
	}
	c.dropFrame()
	for c.takeReadBuf() != nil {
	}
}

// retained is the capacity of the buffers the connection keeps for reuse.
// Buffers the writer has yet to give back are not counted; they are let go
// at the next idle period.
func (c *conn) retained() int {
	return cap(c.frame) + int(c.readBufBytes.Load())
}

// takeReadBuf returns a recycled buffer for a fetch read, or nil. Only the
// reader takes buffers (fetch handlers and releaseIfIdle).
func (c *conn) takeReadBuf() []byte {
	select {
	case b := <-c.readBufs:
		c.readBufBytes.Add(-int64(cap(b)))
		return b
	default:
		return nil
	}
}

// giveReadBuf recycles a fetch read buffer whose last read returned used
// bytes, unless it is mostly unused or enough buffers are kept already.
func (c *conn) giveReadBuf(buf []byte, used int) {
	if cap(buf) == 0 || !keep(cap(buf), used) {
		return
	}
	c.readBufBytes.Add(int64(cap(buf)))
	select {
	case c.readBufs <- buf[:0]:
	default:
		c.readBufBytes.Add(-int64(cap(buf)))
	}
}

func (c *conn) logReadError(err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrDeadlineExceeded):
	case errors.Is(err, protocol.ErrFrameTooLarge), errors.Is(err, protocol.ErrInvalidFrame), errors.Is(err, errOverBudget):
		c.b.metrics.badRequests.Inc()
		c.log.Info("closing connection: bad frame", "err", err)
	default:
		c.log.Debug("connection read ended", "err", err)
	}
}

// decode parses a frame into a request, or into the ApiVersions fallback.
// A nil request with nil error never happens today; the error closes the
// connection (unknown key, unsupported version, malformed body).
func (c *conn) decode(frame []byte) (*request, error) {
	hdr, body, err := protocol.ParseHeader(frame)
	if err != nil {
		return nil, err
	}
	a, ok := c.b.table.lookup(hdr.Key, hdr.Version)
	if !ok {
		if hdr.Key == 18 { // ApiVersions newer than ours: answer v0 (KIP-511).
			return &request{hdr: hdr, conn: c, req: &fallbackAPIVersions{}, start: time.Now()}, nil
		}
		c.b.metrics.unsupported(hdr.Key, hdr.Version)
		return nil, errUnsupported{key: hdr.Key, version: hdr.Version}
	}
	req, err := protocol.ParseBody(hdr, body)
	if err != nil {
		return nil, err
	}
	return &request{hdr: hdr, conn: c, req: req, handle: a.handle, start: time.Now(), q: quotaState{size: len(frame)}}, nil
}

// handle runs the request's handler and queues the reply. It reports false
// when the connection must close; the reply was not queued then.
func (c *conn) handle(ctx context.Context, r *request, frame []byte, replies chan<- *request) bool {
	if _, ok := r.req.(*fallbackAPIVersions); ok {
		r.req = nil
		select {
		case replies <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	resp, err := r.handle(ctx, r)
	if err != nil {
		c.log.Info("closing connection: request failed", "key", r.hdr.Key, "version", r.hdr.Version, "err", err)
		return false
	}
	r.resp = resp
	c.doneWithFrame(r, frame)
	c.b.throttleRequest(r)
	mute := r.q.muteUntil
	select {
	case replies <- r:
		return c.mute(ctx, mute)
	case <-ctx.Done():
		if fr, ok := resp.(*fetchReply); ok {
			fr.release() // unpin its spans; it will not be written
		}
		return false
	}
}

// mute holds the reader back until a throttled request's throttle time is
// over (KIP-219: the response has gone out, the channel stays muted). It
// reports false when ctx ended meanwhile.
func (c *conn) mute(ctx context.Context, until time.Time) bool {
	if until.IsZero() {
		return true
	}
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.b.quotas.draining: // shutting down: the next read ends the connection
	case <-ctx.Done():
		return false
	}
	return true
}

// writeLoop writes replies in request order, running each one's finish step
// first. Writes are buffered and flushed whenever no further reply is ready
// or a finish step is about to block, so a burst of pipelined responses
// costs one write system call; large fetch responses go out directly, their
// record batches with sendfile from the segment files or writev from their
// read buffers.
func (c *conn) writeLoop(ctx context.Context, replies <-chan *request) {
	w := &replyWriter{c: c, bw: bufio.NewWriterSize(c.nc, 64<<10)}
	if tc, ok := c.nc.(*net.TCPConn); ok {
		w.rc, _ = tc.SyscallConn()
	}
	c.w = w
	failed := false
	for r := range replies {
		if failed {
			w.release(r)
			continue // drain so the reader never blocks
		}
		if err := c.reply(ctx, w, r, len(replies) == 0); err != nil {
			// Whatever failed (the socket, a segment file a fetch
			// response was being sent from, or a panic), the client
			// must not wait for answers that will not come: the
			// reader stops too.
			failed = true
			_ = c.nc.Close()
		}
	}
	if !failed {
		_ = w.bw.Flush()
	}
}

// errReplyPanic stands for a panic met while finishing, encoding or
// writing a response; the connection is closed.
var errReplyPanic = errors.New("broker: panic while writing a response")

// reply runs r's finish step and writes its response, flushing when last
// (no further reply is ready). A panic is logged with r's API key and
// version and returned as errReplyPanic.
func (c *conn) reply(ctx context.Context, w *replyWriter, r *request, last bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.recovered("write", &r.hdr, p)
			func() {
				defer func() { _ = recover() }() // already logged once
				w.release(r)
			}()
			err = errReplyPanic
		}
	}()
	if r.finish != nil {
		r.finish(ctx)
	}
	if r.noResponse {
		w.release(r)
		c.b.metrics.observeRequest(r.hdr.Key, r.hdr.Version, time.Since(r.start))
		return nil
	}
	if r.resp == nil {
		r.resp = c.b.unsupportedAPIVersions()
	}
	if h := c.b.hooks.write.Load(); h != nil {
		(*h)(r)
	}
	c.b.metrics.countErrors(r.hdr.Key, r.resp)
	err = w.write(r)
	w.release(r)
	if err == nil && last {
		err = w.bw.Flush()
	}
	if err == nil {
		c.b.metrics.observeRequest(r.hdr.Key, r.hdr.Version, time.Since(r.start))
	}
	return err
}

// flushBeforeWait sends the responses the writer has buffered but not yet
// flushed. A finish step calls it before it blocks (an fsync that has not
// happened yet), so that the responses ahead of it, whose own waits are
// over, do not wait for it too. It runs on the writer goroutine; a write
// error stays in the buffered writer, and writeLoop sees it at its next
// write.
func (c *conn) flushBeforeWait() {
	if c == nil || c.w == nil || c.w.bw.Buffered() == 0 {
		return
	}
	_ = c.w.bw.Flush()
}

// replyWriter encodes and writes responses for writeLoop, reusing its
// buffers from one response to the next.
type replyWriter struct {
	c       *conn
	bw      *bufio.Writer
	rc      syscall.RawConn // the socket, for sendfile; nil if not a TCP connection
	buf     []byte          // encoded frame (without the batches sent apart)
	cuts    []int           // where in buf those batches go
	parts   []part          // a fetch response in sending order
	pending net.Buffers     // byte parts waiting for one writev
	copyBuf []byte          // spans sent through memory when sendfile cannot be used
}

// part is a piece of a response as it is sent: bytes, or a range of a
// segment file; check marks the point where the spans are verified before
// the last byte goes out.
type part struct {
	b      []byte
	f      vfs.File
	pos, n int64
	check  bool
}

// errSpanChanged means a log was truncated while batches were being sent
// from its segment file: what the client got may not be what was read, so
// the connection is closed before the response is complete and the client
// fetches again.
var errSpanChanged = errors.New("broker: log truncated while a fetch response was being sent")

// write encodes r's response and writes it to the buffered writer; a fetch
// response with batches sent apart (see fetchReply) goes out directly.
func (w *replyWriter) write(r *request) error {
	defer func() {
		if cap(w.buf) > 1<<20 {
			w.buf = nil // do not pin a huge response's buffer
		}
	}()
	fr, ok := r.resp.(*fetchReply)
	if !ok || len(fr.out) == 0 {
		return w.writeWhole(r.hdr.CorrelationID, r.resp)
	}
	fr.next = 0
	buf, cuts, ok := protocol.AppendFetchResponse(w.buf[:0], r.hdr.CorrelationID, fr.FetchResponse, fr.external, w.cuts[:0])
	if !ok {
		if err := fr.inline(); err != nil {
			return err
		}
		return w.writeWhole(r.hdr.CorrelationID, fr.FetchResponse)
	}
	w.buf, w.cuts = buf, cuts
	parts, size, spans := w.parts[:0], 0, false
	prev := 0
	for k, at := range cuts {
		pl := &fr.out[k]
		parts = append(parts, part{b: buf[prev:at]})
		if pl.data != nil {
			parts = append(parts, part{b: pl.data})
		} else {
			parts = append(parts, part{f: pl.span.File, pos: pl.span.Pos, n: pl.span.Len})
			spans = true
		}
		size += at - prev + int(pl.size())
		prev = at
	}
	parts = append(parts, part{b: buf[prev:]})
	size += len(buf) - prev
	w.parts = parts
	defer func() { clear(w.parts[:cap(w.parts)]) }() // drop references to buffers and files
	if !spans && size < directWriteMin {
		for _, p := range parts {
			if _, err := w.bw.Write(p.b); err != nil {
				return err
			}
		}
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	if spans {
		parts = holdBackLast(parts)
	}
	return w.send(parts, fr)
}

// writeWhole encodes resp into one frame and writes it to the buffered
// writer.
func (w *replyWriter) writeWhole(corr int32, resp kmsg.Response) error {
	w.buf = protocol.AppendResponse(w.buf[:0], corr, resp)
	_, err := w.bw.Write(w.buf)
	return err
}

// holdBackLast splits off the last byte of parts behind a check: a client
// cannot take an incomplete response for a complete one, so verifying the
// spans before that byte goes out means no response with changed bytes is
// ever completed. parts must hold at least one byte.
func holdBackLast(parts []part) []part {
	i := len(parts) - 1
	for parts[i].n == 0 && len(parts[i].b) == 0 {
		i--
	}
	last := parts[i]
	out := parts[:i]
	if last.f != nil {
		out = append(out, part{f: last.f, pos: last.pos, n: last.n - 1}, part{check: true},
			part{f: last.f, pos: last.pos + last.n - 1, n: 1})
	} else {
		out = append(out, part{b: last.b[:len(last.b)-1]}, part{check: true}, part{b: last.b[len(last.b)-1:]})
	}
	return out
}

// send writes parts to the socket in order: runs of bytes with one writev,
// file ranges with sendfile (or through memory where sendfile cannot be
// used). At a check it verifies fr's spans.
func (w *replyWriter) send(parts []part, fr *fetchReply) error {
	w.pending = w.pending[:0]
	defer clear(w.pending[:cap(w.pending)])
	for _, p := range parts {
		switch {
		case len(p.b) > 0:
			w.pending = append(w.pending, p.b)
			continue
		case p.n == 0 && !p.check:
			continue
		}
		if err := w.flushPending(); err != nil {
			return err
		}
		if p.check {
			if !fr.intact() {
				return errSpanChanged // writeLoop closes the connection
			}
			continue
		}
		if err := w.sendFile(p.f, p.pos, p.n); err != nil {
			return err
		}
	}
	return w.flushPending()
}

// flushPending writes the byte parts gathered so far with one writev.
func (w *replyWriter) flushPending() error {
	if len(w.pending) == 0 {
		return nil
	}
	bufs := w.pending // WriteTo consumes its receiver
	_, err := bufs.WriteTo(w.c.nc)
	w.pending = w.pending[:0]
	return err
}

// sendFile writes n bytes of f at pos to the socket: with sendfile(2) when
// both ends allow it, so the bytes go from the page cache to the socket
// without passing through this process, otherwise through a buffer.
func (w *replyWriter) sendFile(f vfs.File, pos, n int64) error {
	if src, ok := f.(syscall.Conn); ok && w.rc != nil {
		if handled, err := sendfile(w.rc, src, pos, n); handled {
			return err
		}
	}
	for n > 0 {
		chunk := min(n, 256<<10)
		if int64(cap(w.copyBuf)) < chunk {
			w.copyBuf = make([]byte, chunk)
		}
		b := w.copyBuf[:chunk]
		if _, err := f.ReadAt(b, pos); err != nil {
			return fmt.Errorf("read fetched batches: %w", err)
		}
		if _, err := w.c.nc.Write(b); err != nil {
			return err
		}
		pos, n = pos+chunk, n-chunk
	}
	return nil
}

// sendfile copies n bytes of src at pos to the socket dst with sendfile(2),
// waiting for the socket to drain as needed. handled is false when src
// offers no file descriptor; nothing was sent then.
func sendfile(dst syscall.RawConn, src syscall.Conn, pos, n int64) (handled bool, err error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return false, nil
	}
	var sendErr, writeErr error
	ctlErr := rc.Control(func(sfd uintptr) {
		// writeErr is the poller's own error; sendErr, set inside, must
		// not be overwritten by it.
		writeErr = dst.Write(func(dfd uintptr) bool {
			for n > 0 {
				got, err := syscall.Sendfile(int(dfd), int(sfd), &pos, int(min(n, 1<<30)))
				n -= int64(max(got, 0))
				switch {
				case errors.Is(err, syscall.EINTR):
				case errors.Is(err, syscall.EAGAIN):
					return false // wait until the socket can take more
				case err != nil:
					sendErr = fmt.Errorf("sendfile: %w", err)
					return true
				case got == 0:
					sendErr = fmt.Errorf("sendfile: %w", io.ErrUnexpectedEOF) // the file shrank
					return true
				}
			}
			return true
		})
	})
	return true, errors.Join(ctlErr, writeErr, sendErr)
}

// release gives r's fetch read buffers back to the connection and unpins
// its spans once nothing will read them again, and gives back what r
// holds of the request budgets. It is safe to call again.
func (w *replyWriter) release(r *request) {
	if fr, ok := r.resp.(*fetchReply); ok {
		fr.release()
	}
	w.c.releaseHold(&r.hold)
}

// fallbackAPIVersions marks a too-new ApiVersions request; it is never
// handled, only answered with unsupportedAPIVersions.
type fallbackAPIVersions struct{ kmsg.ApiVersionsRequest }

type errUnsupported struct{ key, version int16 }

func (e errUnsupported) Error() string {
	return "unsupported api key " + itoa(int64(e.key)) + " version " + itoa(int64(e.version))
}
