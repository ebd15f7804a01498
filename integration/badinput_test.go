package integration

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// expectClosed reports whether the broker closed conn within a few seconds
// without sending a response.
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1)
	_, err := conn.Read(buf)
	if err == nil {
		t.Fatal("broker answered instead of closing the connection")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("broker kept the connection open")
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		// A reset is also a close.
		t.Logf("connection ended with %v", err)
	}
}

func frame(body []byte) []byte {
	out := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(out, uint32(len(body)))
	return append(out, body...)
}

// header encodes a request header v1 (key, version, correlation id, client id).
func header(key, version int16, corr int32) []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	return append(b, "test"...)
}

func TestBadInputClosesConnectionOthersUnaffected(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, map[string]string{"socket.request.max.bytes": "1048576"})
	createTopic(t, ib.addr(), "steady", 1, nil)

	// A well-behaved producer keeps producing throughout.
	good := client(t, ib.addr(), kgo.DefaultProduceTopic("steady"))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var produced, failed int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := good.ProduceSync(ctx, &kgo.Record{Value: []byte("ok")}).FirstErr(); err != nil {
				if ctx.Err() == nil {
					failed++
				}
				continue
			}
			produced++
		}
	}()

	cases := []struct {
		name string
		send []byte
	}{
		{"negative size", []byte{0xff, 0xff, 0xff, 0xff}},
		{"oversized frame", binary.BigEndian.AppendUint32(nil, 200<<20)},
		{"garbage body", frame([]byte{0xde, 0xad, 0xbe, 0xef, 0x01})},
		{"unknown api key", frame(header(9999, 0, 1))},
		{"unsupported produce version", frame(header(0, 99, 1))},
		{"truncated metadata", frame(append(header(3, 9, 1), 0x05))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", ib.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(c.send); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, conn)
		})
	}

	// A client that announces a large frame and hangs up half-way.
	conn, err := net.Dial("tcp", ib.addr())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write(binary.BigEndian.AppendUint32(nil, 900<<10))
	_, _ = conn.Write(make([]byte, 1000))
	conn.Close()

	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	if produced == 0 || failed > 0 {
		t.Fatalf("well-behaved producer: %d produced, %d failed while bad clients came and went", produced, failed)
	}
	if end := endOffset(t, good, "steady"); end != int64(produced) {
		t.Fatalf("end offset %d, want exactly the %d acknowledged records", end, produced)
	}
}

func TestApiVersionsTooNewFallsBackToV0(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	conn, err := net.Dial("tcp", ib.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// ApiVersions v99: the broker must answer v0 with UNSUPPORTED_VERSION.
	if _, err := conn.Write(frame(append(header(18, 99, 7), 0))); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatal(err)
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != 7 {
		t.Fatalf("correlation id %d", corr)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body[4:]); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 35 {
		t.Fatalf("error code %d, want UNSUPPORTED_VERSION (35)", resp.ErrorCode)
	}
	found := false
	for _, k := range resp.ApiKeys {
		if k.ApiKey == 18 {
			found = k.MaxVersion >= 3
		}
	}
	if !found {
		t.Fatalf("fallback response lacks ApiVersions' own range: %+v", resp.ApiKeys)
	}
}
