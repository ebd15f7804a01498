package broker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
)

// maxPipelined bounds how many requests of one connection may be decoded and
// handled ahead of their responses being written. Kafka clients keep at most
// five in flight per connection by default; the slack absorbs bursts.
const maxPipelined = 32

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
}

func (b *Broker) serveConn(ctx context.Context, nc net.Conn) {
	c := &conn{b: b, nc: nc, remote: nc.RemoteAddr().String()}
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
		_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		frame, err := protocol.ReadFrame(br, maxFrame, nil)
		if err != nil {
			c.logReadError(err)
			return
		}
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
// so a burst of pipelined responses costs one write system call.
func (c *conn) writeLoop(ctx context.Context, replies <-chan *request) {
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	var buf []byte
	failed := false
	for r := range replies {
		if failed {
			continue // drain so the reader never blocks
		}
		if r.finish != nil {
			r.finish(ctx)
		}
		if r.noResponse {
			c.b.metrics.observeRequest(r.hdr.Key, r.hdr.Version, time.Since(r.start))
			continue
		}
		resp := r.resp
		if resp == nil {
			resp = c.b.unsupportedAPIVersions()
		}
		c.b.metrics.countErrors(r.hdr.Key, resp)
		buf = protocol.AppendResponse(buf[:0], r.hdr.CorrelationID, resp)
		if _, err := bw.Write(buf); err != nil {
			failed = true
			continue
		}
		if len(replies) == 0 {
			if err := bw.Flush(); err != nil {
				failed = true
			}
		}
		c.b.metrics.observeRequest(r.hdr.Key, r.hdr.Version, time.Since(r.start))
		if cap(buf) > 1<<20 {
			buf = nil // do not pin a huge fetch response's buffer
		}
	}
	if !failed {
		_ = bw.Flush()
	}
}

// fallbackAPIVersions marks a too-new ApiVersions request; it is never
// handled, only answered with unsupportedAPIVersions.
type fallbackAPIVersions struct{ kmsg.ApiVersionsRequest }

type errUnsupported struct{ key, version int16 }

func (e errUnsupported) Error() string {
	return "unsupported api key " + itoa(int64(e.key)) + " version " + itoa(int64(e.version))
}
