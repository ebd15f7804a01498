package broker

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A request of many tiny list entries counts decodeFactor times its frame
// against queued.max.request.bytes, since that is about what it takes once
// decoded: a Metadata frame of a sixteenth of the budget and more is
// refused (the connection closes) before its body is read, while a frame
// half that size is served.
func TestConnDecodedSizeCountsAgainstBudget(t *testing.T) {
	t.Parallel()
	b := startTestBrokerWith(t, slog.New(slog.DiscardHandler), map[string]string{
		"queued.max.request.bytes": "1048576", "auto.create.topics.enable": "false",
	})
	format := kmsg.NewRequestFormatter(kmsg.FormatterClientID("decode-budget"))
	metadataFrame := func(size int) []byte {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 4
		name := strings.Repeat("t", 30)
		for n := 0; n < size; n += len(name) + 2 {
			tp := kmsg.NewMetadataRequestTopic()
			tp.Topic = kmsg.StringPtr(name)
			req.Topics = append(req.Topics, tp)
		}
		return format.AppendRequest(nil, req, 1)
	}
	send := func(frame []byte) (answered bool) {
		t.Helper()
		nc, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := nc.Write(frame); err != nil {
			return false
		}
		var size [4]byte
		_, err = io.ReadFull(nc, size[:])
		return err == nil
	}
	// 16 x 32 KiB fits the 1 MiB budget, 16 x 80 KiB does not.
	if !send(metadataFrame(32 << 10)) {
		t.Fatal("a Metadata frame of 32 KiB got no answer")
	}
	if send(metadataFrame(80 << 10)) {
		t.Fatal("a Metadata frame of 80 KiB was answered under a 1 MiB budget; want the connection closed")
	}
	// Everything taken is given back.
	waitUntil(t, func() bool { return gaugeValue(t, b, "sluice_request_memory_bytes") == 0 })
}
