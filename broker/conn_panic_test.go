package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// recordingHandler keeps every log record at Error level, for tests that
// check what was logged and how often.
type recordingHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// attrs returns the attributes of the records with message msg.
func (h *recordingHandler) attrs(msg string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.recs {
		if r.Message != msg {
			continue
		}
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.String()
			return true
		})
		out = append(out, m)
	}
	return out
}

// rawRequest writes one request with the given client id on nc, encoded
// with kmsg (header v1: the request versions used here are not flexible).
func rawRequest(t *testing.T, nc net.Conn, clientID string, req kmsg.Request) {
	t.Helper()
	buf := make([]byte, 4, 64)
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.Key()))
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.GetVersion()))
	buf = binary.BigEndian.AppendUint32(buf, 1)
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(clientID)))
	buf = append(buf, clientID...)
	buf = req.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
}

// TestConnPanicClosesOnlyItsConnection makes a handler, then a response
// writer, panic for one client's request: that connection is closed, the
// panic is logged once with the request's API key, version and stack, and a
// client connected before and after keeps producing and consuming.
func TestConnPanicClosesOnlyItsConnection(t *testing.T) {
	t.Parallel()
	logs := &recordingHandler{}
	b := startTestBrokerWith(t, slog.New(logs), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic = "panics"
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(topic),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	roundTrip := func(v string) {
		t.Helper()
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
	roundTrip("before")

	handlePanic := func(r *request) {
		if r.hdr.ClientID == "boom-handle" {
			panic("injected handler panic")
		}
	}
	writePanic := func(r *request) {
		if r.hdr.ClientID == "boom-write" {
			panic("injected write panic")
		}
	}
	b.hooks.handle.Store(&handlePanic)
	b.hooks.write.Store(&writePanic)
	for _, id := range []string{"boom-handle", "boom-write"} {
		nc, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		rawRequest(t, nc, id, &kmsg.MetadataRequest{Version: 1})
		_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		if n, err := io.ReadFull(nc, make([]byte, 4)); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: read %d bytes, %v; want the connection closed", id, n, err)
		}
		nc.Close()
	}
	roundTrip("after")

	if got := gaugeValue(t, b, "sluice_request_panics_total"); got != 2 {
		t.Errorf("sluice_request_panics_total = %v, want 2", got)
	}
	recs := logs.attrs("closing connection: panic while serving a request")
	if len(recs) != 2 {
		t.Fatalf("%d panic log records, want one per panic: %v", len(recs), recs)
	}
	for i, stage := range []string{"handle", "write"} {
		r := recs[i]
		if r["stage"] != stage || r["key"] != "3" || r["api"] != "Metadata" || r["version"] != "1" ||
			!strings.Contains(r["panic"], "injected "+stage) || !strings.Contains(r["stack"], "conn_panic_test.go") {
			t.Errorf("panic log %d = %v; want stage %s, Metadata v1 and the hook's stack", i, r, stage)
		}
	}
}

// gaugeValue is the value of the unlabelled series name in b's registry,
// or -1 when it is absent.
func gaugeValue(t *testing.T, b *Broker, name string) float64 {
	t.Helper()
	mfs, err := b.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		}
	}
	return -1
}
