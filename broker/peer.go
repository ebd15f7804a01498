package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
)

// peerConn is a connection from this broker to another one, for the
// requests a follower sends its leader (Fetch, OffsetForLeaderEpoch and
// ListOffsets with a replica id, as Kafka's ReplicaFetcherThread does).
// Requests go one at a time; a failed round trip closes the connection and
// the next one dials again. It is used by one goroutine.
type peerConn struct {
	node   int32 // the broker dialled
	addr   string
	nc     net.Conn
	br     *bufio.Reader
	fmt    *kmsg.RequestFormatter
	corr   int32
	buf    []byte
	frame  []byte
	dialer net.Dialer
}

// maxPeerResponse bounds a response frame from a peer: a fetch response is
// at most replica.fetch.response.max.bytes plus one batch per partition;
// anything larger is a broken peer.
const maxPeerResponse = 256 << 20

func newPeerConn(self, node int32) *peerConn {
	return &peerConn{
		node:   node,
		fmt:    kmsg.NewRequestFormatter(kmsg.FormatterClientID("sluice-replica-" + strconv.Itoa(int(self)))),
		dialer: net.Dialer{Timeout: 5 * time.Second},
	}
}

// roundTrip sends req to addr (dialling when not connected, or when the
// peer's address changed) and decodes the answer into resp. The deadline
// covers the whole exchange; any error closes the connection.
func (pc *peerConn) roundTrip(ctx context.Context, addr string, req kmsg.Request, deadline time.Time) (kmsg.Response, error) {
	if pc.nc != nil && pc.addr != addr {
		pc.close()
	}
	if pc.nc == nil {
		nc, err := pc.dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("dial broker %d at %s: %w", pc.node, addr, err)
		}
		pc.nc, pc.addr, pc.br = nc, addr, bufio.NewReaderSize(nc, 64<<10)
	}
	resp, err := pc.exchange(ctx, req, deadline)
	if err != nil {
		pc.close()
		return nil, fmt.Errorf("broker %d at %s: %w", pc.node, addr, err)
	}
	return resp, nil
}

func (pc *peerConn) exchange(ctx context.Context, req kmsg.Request, deadline time.Time) (kmsg.Response, error) {
	stop := context.AfterFunc(ctx, func() { _ = pc.nc.SetDeadline(time.Now()) })
	defer stop()
	if err := pc.nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	pc.corr++
	pc.buf = pc.fmt.AppendRequest(pc.buf[:0], req, pc.corr)
	if _, err := pc.nc.Write(pc.buf); err != nil {
		return nil, err
	}
	frame, err := protocol.ReadFrame(pc.br, maxPeerResponse, pc.frame)
	if err != nil {
		return nil, err
	}
	if len(frame) < 4 {
		return nil, errors.New("short response frame")
	}
	if corr := int32(binary.BigEndian.Uint32(frame)); corr != pc.corr {
		return nil, fmt.Errorf("response correlation id %d, want %d", corr, pc.corr)
	}
	body := frame[4:]
	if req.IsFlexible() && req.Key() != 18 { // response header v1: tagged fields
		n, err := skipTags(body)
		if err != nil {
			return nil, err
		}
		body = body[n:]
	}
	resp := req.ResponseKind()
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode %T: %w", resp, err)
	}
	// The response aliases the frame (record batches); the next exchange
	// reads into a fresh buffer.
	pc.frame = nil
	return resp, nil
}

// skipTags returns the length of an empty-or-not tagged field section at
// the start of b.
func skipTags(b []byte) (int, error) {
	n, used := binary.Uvarint(b)
	if used <= 0 {
		return 0, errors.New("bad response header tags")
	}
	off := used
	for i := uint64(0); i < n; i++ {
		_, u1 := binary.Uvarint(b[off:])
		if u1 <= 0 {
			return 0, errors.New("bad response header tag")
		}
		off += u1
		size, u2 := binary.Uvarint(b[off:])
		if u2 <= 0 || uint64(len(b)-off-u2) < size {
			return 0, errors.New("bad response header tag size")
		}
		off += u2 + int(size)
	}
	return off, nil
}

func (pc *peerConn) close() {
	if pc.nc != nil {
		_ = pc.nc.Close()
	}
	pc.nc, pc.br, pc.addr = nil, nil, ""
}
