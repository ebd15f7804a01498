package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Well-known API keys whose headers break the general rules.
const (
	// keyControlledShutdown v0 has a request header without a client id
	// (request header v0).
	keyControlledShutdown int16 = 7
	// keyAPIVersions always answers with response header v0, even at
	// flexible versions, so that a client can read the answer before it
	// knows which versions the broker speaks (KIP-511).
	keyAPIVersions int16 = 18
)

// MaxDecodeAmplification bounds the bytes ParseRequest may allocate per
// frame byte on hostile input. kmsg sizes each decoded array from its wire
// count, but refuses counts that the rest of the frame could not hold at the
// element's minimum encoded size; the worst ratio of Go element size to that
// minimum across kmsg's request types is about 42 (measured by
// TestRequestDecodeAmplification). A broker bounding in-flight request
// bytes should budget this multiple for decoding.
const MaxDecodeAmplification = 64

var (
	// ErrInvalidHeader is returned when a frame is too short to hold a
	// request header or its client id or tagged fields are malformed.
	ErrInvalidHeader = errors.New("protocol: malformed request header")
	// ErrUnknownKey is returned for an API key that kmsg does not know.
	// The Header is still returned so that the caller can log it and close
	// the connection, as Kafka does.
	ErrUnknownKey = errors.New("protocol: unknown api key")
	// ErrUnsupportedVersion is returned for a version outside
	// [0, MaxVersion] of kmsg's type for the key: the body cannot be
	// decoded. The Header is still returned; for ApiVersions the broker
	// must answer with a v0 response carrying UNSUPPORTED_VERSION.
	ErrUnsupportedVersion = errors.New("protocol: unsupported api version")
	// ErrMalformedRequest is returned when a request body does not decode
	// at its version (too short, or a length that exceeds the frame).
	ErrMalformedRequest = errors.New("protocol: malformed request body")
)

// Header is a decoded Kafka request header. Which header version applies
// (v0 for ControlledShutdown v0, v2 for flexible versions, v1 otherwise) is
// derived from Key and Version; the tagged fields of v2 are skipped.
type Header struct {
	// Key is the API key (0 Produce, 1 Fetch, ... 18 ApiVersions).
	Key int16
	// Version is the API version the client encoded the body with.
	Version int16
	// CorrelationID is echoed in the response so that clients can match
	// answers to pipelined requests.
	CorrelationID int32
	// ClientID is the client's self-chosen name; a null client id (and
	// header v0, which has none) reads as "".
	ClientID string
}

// ParseHeader decodes the request header at the start of frame (a body
// returned by ReadFrame) and returns it with the remaining request body.
//
// It does not decode the body and does not check the version against any
// table, so it succeeds for ApiVersions at versions newer than this broker
// knows: Kafka answers those with a v0 response. For an unknown key the
// header is returned with ErrUnknownKey and body is what follows the client
// id (tagged fields cannot be told apart without knowing the key). When the
// frame is shorter than key, version and correlation id, Header is zero.
func ParseHeader(frame []byte) (Header, []byte, error) {
	h, _, body, err := parseHeader(frame)
	return h, body, err
}

// parseHeader is ParseHeader, also returning the kmsg request that the
// header's key selected (nil for an unknown key), with its version set.
func parseHeader(frame []byte) (Header, kmsg.Request, []byte, error) {
	b := kbin.Reader{Src: frame}
	h := Header{Key: b.Int16(), Version: b.Int16(), CorrelationID: b.Int32()}
	if !b.Ok() {
		return Header{}, nil, nil, fmt.Errorf("%w: %d bytes", ErrInvalidHeader, len(frame))
	}
	req := kmsg.RequestForKey(h.Key)
	if req != nil {
		req.SetVersion(h.Version)
	}
	if h.Key == keyControlledShutdown && h.Version == 0 {
		return h, req, b.Src, nil
	}
	if id := b.NullableString(); id != nil {
		h.ClientID = *id
	}
	if !b.Ok() {
		return h, req, nil, fmt.Errorf("%w: client id", ErrInvalidHeader)
	}
	if req == nil {
		return h, nil, b.Src, fmt.Errorf("%w: %d", ErrUnknownKey, h.Key)
	}
	if req.IsFlexible() {
		kmsg.SkipTags(&b)
		if !b.Ok() {
			return h, req, nil, fmt.Errorf("%w: tagged fields", ErrInvalidHeader)
		}
	}
	return h, req, b.Src, nil
}

// ParseBody decodes a request body (as returned by ParseHeader) for the
// header's key and version. Callers that check versions against their own
// table do so between ParseHeader and ParseBody.
//
// The request's []byte fields (produce records, group metadata...) alias
// body; strings are copied.
func ParseBody(h Header, body []byte) (kmsg.Request, error) {
	req := kmsg.RequestForKey(h.Key)
	if req == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownKey, h.Key)
	}
	req.SetVersion(h.Version)
	return decodeBody(h, req, body)
}

// ParseRequest decodes a whole request frame: the header, then the body
// with the kmsg type for the key at the header's version.
//
// The Header is returned whenever the first 8 bytes were present, also
// alongside ErrUnknownKey and ErrUnsupportedVersion, so the caller can
// answer ApiVersions with v0 or log and close. Every length read is bounded
// by the frame. Trailing bytes after the body are ignored (kmsg does not
// report them). The request's []byte fields alias frame.
func ParseRequest(frame []byte) (Header, kmsg.Request, error) {
	h, req, body, err := parseHeader(frame)
	if err != nil {
		return h, nil, err
	}
	req, err = decodeBody(h, req, body)
	return h, req, err
}

// decodeBody decodes body into req, whose version is already set.
func decodeBody(h Header, req kmsg.Request, body []byte) (kmsg.Request, error) {
	if h.Version < 0 || h.Version > req.MaxVersion() {
		return nil, fmt.Errorf("%w: %s v%d (max v%d)",
			ErrUnsupportedVersion, kmsg.NameForKey(h.Key), h.Version, req.MaxVersion())
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%w: %s v%d: %w", ErrMalformedRequest, kmsg.NameForKey(h.Key), h.Version, err)
	}
	return req, nil
}

// AppendResponse appends a whole response frame to dst: the 4-byte size,
// the response header and resp encoded at its version (resp.SetVersion must
// have been called with the request's version).
//
// The header is v1 (correlation id plus an empty tagged-field section) when
// resp is flexible, v0 (correlation id only) otherwise, and always v0 for
// ApiVersions (KIP-511: the client cannot know yet whether the broker's
// answer is flexible).
func AppendResponse(dst []byte, corr int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = kbin.AppendInt32(dst, corr)
	if resp.IsFlexible() && resp.Key() != keyAPIVersions {
		dst = append(dst, 0) // no tagged fields
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
