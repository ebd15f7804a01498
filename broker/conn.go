package broker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
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
	// spliceMin is the smallest partition record data a fetch response
	// writes straight from its read buffer (writev) rather than copying it
	// into the encoded frame.
	spliceMin = 4 << 10
	// directWriteMin is the smallest fetch response written with writev,
	// bypassing the connection's write buffer; smaller ones are copied into
	// it so they can share a write system call with other responses.
	directWriteMin = 64 << 10
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
	// readBufs holds recycled buffers for fetch reads: the handler (on the
	// reader) takes them, the writer gives them back once the response
	// holding their bytes is written. readBufBytes is their total capacity.
	readBufs     chan []byte
	readBufBytes atomic.Int64
}

func (b *Broker) serveConn(ctx context.Context, nc net.Conn) {
	c := &conn{b: b, nc: nc, remote: nc.RemoteAddr().String(), readBufs: make(chan []byte, maxReadBufs)}
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
	close(replies)
	<-writerDone
	nc.Close()
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
		c.releaseIfIdle(br)
		_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		frame, err := protocol.ReadFrame(br, maxFrame, c.frame)
		if err != nil {
			c.logReadError(err)
			return
		}
		c.frame = nil // the request aliases it until recycleFrame decides
		r, err := c.decode(frame)
		if err != nil {
			c.log.Debug("closing connection on undecodable request", "err", err)
			c.b.metrics.badRequests.Inc()
			return
		}
		if r == nil {
			continue
		}
		if !c.handle(ctx, r, replies) {
			return
		}
		c.recycleFrame(r.hdr.Key, frame)
	}
}

// recycleFrame keeps frame for the next request when nothing decoded from
// it can still be in use. kmsg requests alias their frame for []byte fields
// (records, group metadata), so this is limited to APIs whose handlers are
// known to be done with the request when they return: Produce appends the
// records to the log before returning and its finish step and response hold
// no request bytes; a Fetch request has no byte fields. Every other frame is
// left to the garbage collector, as a handler may keep parts of it.
func (c *conn) recycleFrame(key int16, frame []byte) {
	const produce, fetch = 0, 1
	c.frame = nil
	if key != produce && key != fetch {
		return
	}
	if keep(cap(frame), len(frame)) {
		c.frameSmall = 0
	} else if c.frameSmall++; c.frameSmall >= shrinkAfter {
		c.frameSmall = 0
		return
	}
	c.frame = frame[:0]
}

// keep reports whether a buffer of capacity capacity whose last use filled
// used bytes is worth recycling.
func keep(capacity, used int) bool {
	return capacity <= keepSmall || used >= capacity/shrinkRatio
}

// releaseIfIdle lets the connection's recycled buffers go when it keeps
// more than keepSmall and the client sends nothing for idleRelease, so that
// an idle connection does not pin the memory of its busiest moment. It
// waits only when no request is already buffered.
func (c *conn) releaseIfIdle(br *bufio.Reader) {
	if br.Buffered() >= 4 || c.retained() <= keepSmall {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(idleRelease))
	if _, err := br.Peek(4); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return // data arrived, or a real error the next read reports again
	}
	c.frame = nil
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
	case errors.Is(err, protocol.ErrFrameTooLarge), errors.Is(err, protocol.ErrInvalidFrame):
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
	return &request{hdr: hdr, conn: c, req: req, handle: a.handle, start: time.Now()}, nil
}

// handle runs the request's handler and queues the reply. It reports false
// when the connection must close.
func (c *conn) handle(ctx context.Context, r *request, replies chan<- *request) bool {
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
	select {
	case replies <- r:
		return true
	case <-ctx.Done():
		return false
	}
}

// writeLoop writes replies in request order, running each one's finish step
// first. Writes are buffered and flushed whenever no further reply is ready,
// so a burst of pipelined responses costs one write system call; large fetch
// responses go out with writev straight from their read buffers.
func (c *conn) writeLoop(ctx context.Context, replies <-chan *request) {
	w := &replyWriter{c: c, bw: bufio.NewWriterSize(c.nc, 64<<10)}
	failed := false
	for r := range replies {
		if failed {
			w.release(r)
			continue // drain so the reader never blocks
		}
		if r.finish != nil {
			r.finish(ctx)
		}
		if r.noResponse {
			c.b.metrics.observeRequest(r.hdr.Key, r.hdr.Version, time.Since(r.start))
			continue
		}
		if r.resp == nil {
			r.resp = c.b.unsupportedAPIVersions()
		}
		c.b.metrics.countErrors(r.hdr.Key, r.resp)
		err := w.write(r)
		w.release(r)
		if err == nil && len(replies) == 0 {
			err = w.bw.Flush()
		}
		if err != nil {
			failed = true
			continue
		}
		c.b.metrics.observeRequest(r.hdr.Key, r.hdr.Version, time.Since(r.start))
	}
	if !failed {
		_ = w.bw.Flush()
	}
}

// replyWriter encodes and writes responses for writeLoop, reusing its
// buffers from one response to the next.
type replyWriter struct {
	c      *conn
	bw     *bufio.Writer
	buf    []byte   // encoded frame (without spliced record batches)
	pieces [][]byte // a fetch response's frame in writev order
}

// write encodes r's response and writes it to the buffered writer, or for a
// large fetch response, flushes that and writes the frame with writev.
func (w *replyWriter) write(r *request) error {
	defer func() {
		if cap(w.buf) > 1<<20 {
			w.buf = nil // do not pin a huge response's buffer
		}
	}()
	fr, ok := r.resp.(*fetchReply)
	if !ok {
		w.buf = protocol.AppendResponse(w.buf[:0], r.hdr.CorrelationID, r.resp)
		_, err := w.bw.Write(w.buf)
		return err
	}
	w.buf, w.pieces = protocol.AppendFetchResponse(w.buf[:0], r.hdr.CorrelationID, fr.FetchResponse, spliceMin, w.pieces[:0])
	defer clear(w.pieces) // drop references to the read buffers
	size := 0
	for _, p := range w.pieces {
		size += len(p)
	}
	if size < directWriteMin {
		for _, p := range w.pieces {
			if _, err := w.bw.Write(p); err != nil {
				return err
			}
		}
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	bufs := net.Buffers(w.pieces)
	_, err := bufs.WriteTo(w.c.nc)
	return err
}

// release gives r's fetch read buffers back to the connection once nothing
// will read them again.
func (w *replyWriter) release(r *request) {
	if fr, ok := r.resp.(*fetchReply); ok {
		fr.release()
	}
}

// fallbackAPIVersions marks a too-new ApiVersions request; it is never
// handled, only answered with unsupportedAPIVersions.
type fallbackAPIVersions struct{ kmsg.ApiVersionsRequest }

type errUnsupported struct{ key, version int16 }

func (e errUnsupported) Error() string {
	return "unsupported api key " + itoa(int64(e.key)) + " version " + itoa(int64(e.version))
}
