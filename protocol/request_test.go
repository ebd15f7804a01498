package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawHeader builds a request header by hand, independent of kmsg's
// formatter: key, version, correlation id, then optionally a client id
// (nil = null) and a tagged-field section.
func rawHeader(key, version int16, corr int32, withClientID bool, clientID *string, tags []byte) []byte {
	b := kbin.AppendInt16(nil, key)
	b = kbin.AppendInt16(b, version)
	b = kbin.AppendInt32(b, corr)
	if withClientID {
		b = kbin.AppendNullableString(b, clientID)
	}
	return append(b, tags...)
}

func TestRequestParseHeader(t *testing.T) {
	t.Parallel()
	id := "cli"
	tests := []struct {
		name     string
		frame    []byte
		want     Header
		wantBody []byte
		wantErr  error
	}{
		{
			name:     "v1 header (Metadata v4)",
			frame:    append(rawHeader(3, 4, 7, true, &id, nil), 0xAA),
			want:     Header{Key: 3, Version: 4, CorrelationID: 7, ClientID: "cli"},
			wantBody: []byte{0xAA},
		},
		{
			name:     "null client id",
			frame:    append(rawHeader(3, 4, 7, true, nil, nil), 0xAA),
			want:     Header{Key: 3, Version: 4, CorrelationID: 7},
			wantBody: []byte{0xAA},
		},
		{
			name:     "v2 header skips tags (Metadata v9)",
			frame:    append(rawHeader(3, 9, 8, true, &id, []byte{1, 5, 2, 'x', 'y'}), 0xBB),
			want:     Header{Key: 3, Version: 9, CorrelationID: 8, ClientID: "cli"},
			wantBody: []byte{0xBB},
		},
		{
			name:     "v0 header (ControlledShutdown v0)",
			frame:    append(rawHeader(7, 0, 9, false, nil, nil), 0, 0, 0, 1),
			want:     Header{Key: 7, Version: 0, CorrelationID: 9},
			wantBody: []byte{0, 0, 0, 1},
		},
		{
			name:     "ApiVersions newer than kmsg knows",
			frame:    append(rawHeader(18, 999, 10, true, &id, []byte{0}), 0xCC),
			want:     Header{Key: 18, Version: 999, CorrelationID: 10, ClientID: "cli"},
			wantBody: []byte{0xCC},
		},
		{
			name:     "unknown key keeps header",
			frame:    append(rawHeader(9999, 1, 11, true, &id, nil), 0xDD),
			want:     Header{Key: 9999, Version: 1, CorrelationID: 11, ClientID: "cli"},
			wantBody: []byte{0xDD},
			wantErr:  ErrUnknownKey,
		},
		{name: "too short", frame: []byte{0, 3, 0, 4, 0, 0, 0}, wantErr: ErrInvalidHeader},
		{
			name:    "client id past frame",
			frame:   append(rawHeader(3, 4, 7, false, nil, nil), 0, 10, 'a'),
			want:    Header{Key: 3, Version: 4, CorrelationID: 7},
			wantErr: ErrInvalidHeader,
		},
		{
			name:    "tags past frame",
			frame:   rawHeader(3, 9, 7, true, &id, []byte{1, 5, 100}),
			want:    Header{Key: 3, Version: 9, CorrelationID: 7, ClientID: "cli"},
			wantErr: ErrInvalidHeader,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, body, err := ParseHeader(tt.frame)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if h != tt.want {
				t.Fatalf("header = %+v, want %+v", h, tt.want)
			}
			if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
				t.Fatalf("body = %x, want %x", body, tt.wantBody)
			}
		})
	}
}

func TestRequestParseErrors(t *testing.T) {
	t.Parallel()
	id := "cli"
	maxFetch := kmsg.NewPtrFetchRequest().MaxVersion()
	tests := []struct {
		name       string
		frame      []byte
		wantHeader Header
		wantErr    error
	}{
		{
			name:       "unknown key",
			frame:      rawHeader(31000, 0, 1, true, &id, nil),
			wantHeader: Header{Key: 31000, CorrelationID: 1, ClientID: "cli"},
			wantErr:    ErrUnknownKey,
		},
		{
			name:       "ApiVersions too new",
			frame:      append(rawHeader(18, 1000, 2, true, &id, []byte{0}), 1, 2, 3),
			wantHeader: Header{Key: 18, Version: 1000, CorrelationID: 2, ClientID: "cli"},
			wantErr:    ErrUnsupportedVersion,
		},
		{
			name:       "Fetch too new",
			frame:      rawHeader(1, maxFetch+1, 3, true, &id, []byte{0}),
			wantHeader: Header{Key: 1, Version: maxFetch + 1, CorrelationID: 3, ClientID: "cli"},
			wantErr:    ErrUnsupportedVersion,
		},
		{
			name:       "negative version",
			frame:      rawHeader(1, -1, 4, true, &id, nil),
			wantHeader: Header{Key: 1, Version: -1, CorrelationID: 4, ClientID: "cli"},
			wantErr:    ErrUnsupportedVersion,
		},
		{
			name:       "body array longer than frame",
			frame:      append(rawHeader(3, 4, 5, true, &id, nil), 0, 0, 0, 100, 0, 1),
			wantHeader: Header{Key: 3, Version: 4, CorrelationID: 5, ClientID: "cli"},
			wantErr:    ErrMalformedRequest,
		},
		{
			name:       "huge array count",
			frame:      append(rawHeader(3, 4, 6, true, &id, nil), 0x7f, 0xff, 0xff, 0xff),
			wantHeader: Header{Key: 3, Version: 4, CorrelationID: 6, ClientID: "cli"},
			wantErr:    ErrMalformedRequest,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, req, err := ParseRequest(tt.frame)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if req != nil {
				t.Fatalf("request %T returned with error", req)
			}
			if h != tt.wantHeader {
				t.Fatalf("header = %+v, want %+v", h, tt.wantHeader)
			}
		})
	}
}

// TestRequestEveryKeyAndVersion round-trips every kmsg request type at
// every version, empty and populated: the parsed request re-encodes to the
// exact body the client sent.
func TestRequestEveryKeyAndVersion(t *testing.T) {
	t.Parallel()
	seeds := allSeedRequests(t)
	if len(seeds) < 500 {
		t.Fatalf("only %d seeds", len(seeds))
	}
	for _, s := range seeds {
		h, req, err := ParseRequest(s.frame)
		if err != nil {
			t.Fatalf("key %d v%d filled=%v: %v", s.key, s.version, s.filled, err)
		}
		wantCorr := int32(s.key)<<16 | int32(s.version)
		wantID := "seed-client"
		if s.key == keyControlledShutdown && s.version == 0 {
			wantID = ""
		}
		if h != (Header{Key: s.key, Version: s.version, CorrelationID: wantCorr, ClientID: wantID}) {
			t.Fatalf("key %d v%d: header %+v", s.key, s.version, h)
		}
		if req.Key() != s.key || req.GetVersion() != s.version {
			t.Fatalf("key %d v%d: got %T v%d", s.key, s.version, req, req.GetVersion())
		}
		_, body, err := ParseHeader(s.frame)
		if err != nil {
			t.Fatal(err)
		}
		if got := req.AppendTo(nil); !bytes.Equal(got, body) {
			t.Fatalf("key %d v%d filled=%v: re-encoding differs\n got %x\nwant %x", s.key, s.version, s.filled, got, body)
		}
		if req2, err := ParseBody(h, body); err != nil || !bytes.Equal(req2.AppendTo(nil), body) {
			t.Fatalf("key %d v%d: ParseBody: %v", s.key, s.version, err)
		}
	}
}

func TestRequestAppendResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		resp      func() kmsg.Response
		prefix    []byte
		wantTagID bool // response header v1: an empty tag byte after the correlation id
	}{
		{name: "Metadata v8 (header v0)", resp: func() kmsg.Response { r := kmsg.NewPtrMetadataResponse(); r.SetVersion(8); return r }},
		{name: "Metadata v9 (header v1)", wantTagID: true, resp: func() kmsg.Response { r := kmsg.NewPtrMetadataResponse(); r.SetVersion(9); return r }},
		{name: "ApiVersions v3 stays header v0", resp: func() kmsg.Response {
			r := kmsg.NewPtrApiVersionsResponse()
			r.SetVersion(3)
			r.ApiKeys = append(r.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: 18, MaxVersion: 3})
			return r
		}},
		{name: "ApiVersions v0 unsupported version", resp: func() kmsg.Response {
			r := kmsg.NewPtrApiVersionsResponse()
			r.SetVersion(0)
			r.ErrorCode = kerr.UnsupportedVersion.Code
			return r
		}},
		{name: "appends after existing bytes", prefix: []byte("previous"), wantTagID: true, resp: func() kmsg.Response {
			r := kmsg.NewPtrFetchResponse()
			r.SetVersion(12)
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := tt.resp()
			out := AppendResponse(bytes.Clone(tt.prefix), 0x01020304, resp)
			if !bytes.HasPrefix(out, tt.prefix) {
				t.Fatal("prefix clobbered")
			}
			frame := out[len(tt.prefix):]
			if size := binary.BigEndian.Uint32(frame); int(size) != len(frame)-4 {
				t.Fatalf("size %d for %d bytes", size, len(frame)-4)
			}
			if corr := binary.BigEndian.Uint32(frame[4:]); corr != 0x01020304 {
				t.Fatalf("correlation id %x", corr)
			}
			body := frame[8:]
			if tt.wantTagID {
				if body[0] != 0 {
					t.Fatalf("tag section %x, want 00", body[0])
				}
				body = body[1:]
			}
			if !bytes.Equal(body, resp.AppendTo(nil)) {
				t.Fatal("body differs from resp.AppendTo")
			}
			// A client decodes what we wrote.
			back := kmsg.ResponseForKey(resp.Key())
			back.SetVersion(resp.GetVersion())
			if err := back.ReadFrom(body); err != nil {
				t.Fatalf("client decode: %v", err)
			}
		})
	}
}
