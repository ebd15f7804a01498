package integration

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/broker"
)

// scrape returns the value of one series (name with its labels, as the
// exposition format writes it) from the /metrics of httpAddr, or -1.
func scrape(t testing.TB, httpAddr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", httpAddr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", httpAddr, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", series, line)
			}
			return f
		}
	}
	return -1
}

// dialFrom opens a connection to addr from the loopback address src
// (every 127.0.0.0/8 address is local on Linux), so tests can stand for
// several client hosts.
func dialFrom(t testing.TB, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// served reports whether the broker answers an ApiVersions request on nc;
// false means it closed the connection.
func served(t testing.TB, nc net.Conn) bool {
	t.Helper()
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	buf := make([]byte, 4, 32)
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.Key()))
	buf = binary.BigEndian.AppendUint16(buf, 0)
	buf = binary.BigEndian.AppendUint32(buf, 7)
	buf = binary.BigEndian.AppendUint16(buf, 0) // client id ""
	buf = req.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	if _, err := nc.Write(buf); err != nil {
		return false // reset by a close that came first
	}
	_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(nc, size[:]); err != nil {
		if closedByPeer(err) {
			return false
		}
		t.Fatalf("reading ApiVersions response: %v", err)
	}
	if _, err := io.CopyN(io.Discard, nc, int64(binary.BigEndian.Uint32(size[:]))); err != nil {
		t.Fatalf("reading ApiVersions response: %v", err)
	}
	return true
}

// closedByPeer reports whether a read error means the broker closed the
// connection: EOF, or a reset when it closed with bytes of ours unread.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// flood opens n connections from src and reports how many the broker
// serves; the served ones stay open until the test ends.
func flood(t testing.TB, src, addr string, n int) int {
	t.Helper()
	ok := 0
	for range n {
		if served(t, dialFrom(t, src, addr)) {
			ok++
		}
	}
	return ok
}

// produceConsume checks that cl (producing to and consuming topic) still
// round-trips a record.
func produceConsume(t testing.TB, cl *kgo.Client, v string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
		t.Fatalf("produce %s: %v", v, err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume %s: %v", v, err)
		}
		found := false
		fs.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == v })
		if found {
			return
		}
	}
}

// TestAdmissionConnectionFloodBounded floods a broker with connections
// beyond max.connections.per.ip, then (altered at run time) beyond
// max.connections and a per-address override: each flood gets exactly
// the connections its limit allows, the rest are closed at once and
// counted by reason, and a franz-go producer and consumer connected
// before keep working throughout.
func TestAdmissionConnectionFloodBounded(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, map[string]string{"max.connections.per.ip": "10"})
	const topic = "flood"
	createTopic(t, ib.addr(), topic, 1, nil)
	cl := client(t, ib.addr(), kgo.DefaultProduceTopic(topic), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	produceConsume(t, cl, "before")
	rejected := func(reason string) float64 {
		return scrape(t, ib.b.HTTPAddr(), `sluice_connections_rejected_total{reason="`+reason+`"}`)
	}

	if got := flood(t, "127.0.0.2", ib.addr(), 25); got != 10 {
		t.Errorf("per-address flood: %d connections served, want max.connections.per.ip = 10", got)
	}
	if got := rejected("max_connections_per_ip"); got != 15 {
		t.Errorf("rejected for max_connections_per_ip = %v, want 15", got)
	}
	produceConsume(t, cl, "after per-ip flood")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	adm := kadm.NewClient(client(t, ib.addr()))
	alter := func(maxConns int) {
		t.Helper()
		resps, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "max.connections", Value: kmsg.StringPtr(strconv.Itoa(maxConns))},
			{Op: kadm.SetConfig, Name: "max.connections.per.ip.overrides", Value: kmsg.StringPtr("127.0.0.4:0")},
		})
		if err == nil {
			err = resps[0].Err
		}
		if err != nil {
			t.Fatalf("alter broker configs: %v", err)
		}
	}
	alter(1000) // opens the admin client's connections
	alter(int(scrape(t, ib.b.HTTPAddr(), "sluice_connections")) + 5)
	if got := flood(t, "127.0.0.3", ib.addr(), 20); got != 5 {
		t.Errorf("broker-wide flood: %d connections served, want the 5 left under max.connections", got)
	}
	if got := rejected("max_connections"); got != 15 {
		t.Errorf("rejected for max_connections = %v, want 15", got)
	}
	if served(t, dialFrom(t, "127.0.0.4", ib.addr())) {
		t.Error("a connection from an address with an override of 0 was served")
	}
	produceConsume(t, cl, "after broker-wide flood")
}

// TestAdmissionIdleAndStalledFramesClosed checks connections.max.idle.ms
// and the bound on a frame that stops half way: an idle connection is
// closed, one that keeps sending requests is not, and one that trickles a
// frame (never idle) is closed once RequestReadTimeout has passed since
// the frame began, giving back the request budget it held.
func TestAdmissionIdleAndStalledFramesClosed(t *testing.T) {
	t.Parallel()
	cfg := broker.Config{
		NodeID: 1, Listen: "127.0.0.1:0", DataDir: t.TempDir(), HTTPListen: "127.0.0.1:0",
		EmbeddedEtcdClientAddr: "127.0.0.1:0", EmbeddedEtcdPeerAddr: "127.0.0.1:0",
		Settings:           map[string]string{"connections.max.idle.ms": "1500"},
		RequestReadTimeout: 400 * time.Millisecond,
		Logger:             testLogger(t),
	}
	ib := startBrokerConfig(t, cfg)
	idle := dialFrom(t, "127.0.0.1", ib.addr())
	trickle := dialFrom(t, "127.0.0.1", ib.addr())

	closed := func(nc net.Conn) <-chan error {
		ch := make(chan error, 1)
		go func() {
			_ = nc.SetReadDeadline(time.Now().Add(time.Minute))
			_, err := nc.Read(make([]byte, 1))
			ch <- err
		}()
		return ch
	}
	idleClosed := closed(idle)

	// A 1000-byte frame, one byte per poll of waitFor (every 50ms): it
	// would take 50 s.
	var head [4]byte
	binary.BigEndian.PutUint32(head[:], 1000)
	if _, err := trickle.Write(head[:]); err != nil {
		t.Fatal(err)
	}
	trickleClosed := closed(trickle)
	sent := 0
	waitFor(t, 20*time.Second, func() error {
		select {
		case err := <-trickleClosed:
			if !closedByPeer(err) {
				t.Fatalf("trickled frame: read %v, want the connection closed", err)
			}
			return nil
		default:
		}
		if _, err := trickle.Write([]byte{0}); err == nil {
			sent++
		}
		if sent >= 900 {
			t.Fatal("the trickled frame was still being read after 900 bytes")
		}
		return errors.New("trickled frame still open")
	})
	if sent >= 200 {
		t.Errorf("the trickled frame was closed after %d bytes", sent)
	}
	waitFor(t, 10*time.Second, func() error {
		if v := scrape(t, ib.b.HTTPAddr(), "sluice_request_memory_bytes"); v != 0 {
			return fmt.Errorf("request memory %v after the stalled frame closed", v)
		}
		return nil
	})

	// The busy connection sends a request every 300ms for three idle
	// periods and is served throughout.
	busy := dialFrom(t, "127.0.0.1", ib.addr())
	pace := time.NewTicker(300 * time.Millisecond)
	defer pace.Stop()
	for deadline := time.Now().Add(4500 * time.Millisecond); time.Now().Before(deadline); <-pace.C {
		if !served(t, busy) {
			t.Fatal("a busy connection was closed")
		}
	}
	select {
	case err := <-idleClosed:
		if !closedByPeer(err) {
			t.Fatalf("idle connection: read %v, want the connection closed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an idle connection was not closed after connections.max.idle.ms")
	}
}

// TestAdmissionConnectionCreationRateDelays opens connections faster than
// max.connection.creation.rate: none is refused, accepting them is
// delayed (KIP-612), and the delay is counted.
func TestAdmissionConnectionCreationRateDelays(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, map[string]string{"max.connection.creation.rate": "5"})
	// All 12 connect at once (the kernel completes the handshakes; they
	// wait in the listen backlog to be accepted).
	conns := make([]net.Conn, 12)
	for i := range conns {
		conns[i] = dialFrom(t, "127.0.0.5", ib.addr())
	}
	for i, nc := range conns {
		if !served(t, nc) {
			t.Errorf("connection %d not served; over the creation rate connections must be delayed, not refused", i)
		}
	}
	// A burst of 5, then 7 at 5 a second: 1.4 s of delay.
	if got := scrape(t, ib.b.HTTPAddr(), "sluice_connection_accept_throttle_seconds_total"); got < 1 {
		t.Errorf("sluice_connection_accept_throttle_seconds_total = %v, want at least 1", got)
	}
	for _, reason := range []string{"max_connections", "max_connections_per_ip"} {
		if got := scrape(t, ib.b.HTTPAddr(), `sluice_connections_rejected_total{reason="`+reason+`"}`); got > 0 {
			t.Errorf("%v connections rejected for %s", got, reason)
		}
	}
}
