// Package protocol is Sluice's Kafka wire layer: it reads request frames,
// decodes request headers and bodies, encodes response frames, and
// validates, decompresses, decodes and builds v2 record batches. Every
// message codec is kmsg's (github.com/twmb/franz-go/pkg/kmsg); this package
// adds framing, header rules, bounds and record-batch validation around it.
//
// The package is stateless: it does no I/O of its own beyond the io.Reader
// handed to ReadFrame, holds no configuration, and owns no version table
// (the broker decides which API versions it serves). The only reusable
// state is a Codecs value, a cache of compressors the caller creates and
// shares; it is safe for concurrent use. All other functions may be called
// concurrently on distinct inputs.
//
// # Framing
//
// Requests and responses are size-prefixed:
//
//	+----------------+------------------------------+
//	| size int32 BE  | size bytes: header then body |
//	+----------------+------------------------------+
//
// ReadFrame rejects negative sizes and sizes above the caller's maximum
// (socket.request.max.bytes) before reading the body, and grows its buffer
// only as bytes arrive, never from the announced size alone.
//
// # Request headers
//
//	v0: api_key int16 | api_version int16 | correlation_id int32
//	v1: v0 | client_id nullable string (int16 length, -1 = null)
//	v2: v1 | tagged fields (uvarint count, then tag/size/bytes)
//
// v0 is used only by ControlledShutdown v0, v2 by flexible versions
// (KIP-482) and v1 by everything else. The client id is never a compact
// string, even in v2, because clients send ApiVersions before they know the
// broker's versions. ParseHeader decodes the header without looking at the
// body, so that an ApiVersions request at an unknown version still yields a
// correlation id to answer with (KIP-511: the broker replies with
// ApiVersions v0 and UNSUPPORTED_VERSION).
//
// # Response headers
//
//	v0: correlation_id int32
//	v1: v0 | tagged fields (always empty here)
//
// AppendResponse writes v1 for flexible responses and v0 otherwise, except
// that ApiVersions responses always carry v0.
//
// # Record batch v2
//
//	offset size field
//	     0    8 BaseOffset
//	     8    4 Length (bytes after this field)
//	    12    4 PartitionLeaderEpoch
//	    16    1 Magic (2)
//	    17    4 CRC-32C (Castagnoli) of bytes 21..end
//	    21    2 Attributes (bits 0-2 codec, 3 LogAppendTime, 4 transactional, 5 control)
//	    23    4 LastOffsetDelta
//	    27    8 FirstTimestamp
//	    35    8 MaxTimestamp
//	    43    8 ProducerID
//	    51    2 ProducerEpoch
//	    53    4 BaseSequence
//	    57    4 NumRecords
//	    61    - records, compressed as a whole when codec != 0
//
// Each record is: length varint, attributes int8, timestamp delta varlong,
// offset delta varint, key and value (varint length, -1 = null), header
// count varint, then headers (varint-length key string, varint-length
// value).
//
// # What is validated where
//
//   - ReadFrame: frame size sign and maximum; truncation (io.ErrUnexpectedEOF).
//   - ParseHeader/ParseRequest: the header fits the frame; the key is known
//     to kmsg; the version is within kmsg's range; every length and array
//     count in the body is bounded by the bytes left in the frame (kmsg's
//     kbin.Reader). Not validated: the broker's supported version range,
//     field semantics, trailing bytes after the body (ignored). On hostile
//     input decoding may allocate up to MaxDecodeAmplification bytes per
//     frame byte before failing.
//   - DecodeRecords: batch framing, magic, CRC, codec, counts, record
//     lengths, sequential offset deltas, records-section size after
//     decompression; see its doc.
//     Not validated: timestamps, producer state, control record contents.
//   - Codecs.Decompress: output size bounded by the caller (decompression
//     bombs), corrupt input.
//   - Validator.Validate (the produce path): what DecodeRecords checks,
//     walked without decoding records into values and streaming compressed
//     batches through a fixed window, plus per-record rules (keys on
//     compacted topics, CreateTime bounds) reported as RecordErrors; see
//     its doc for the error classes.
//   - Recompress: rebuilds a validated batch with another codec, keeping
//     every field but the codec bits, Length, records section and CRC.
//
// Decoded requests and records alias the bytes they were decoded from
// (kmsg keeps []byte fields as sub-slices); callers must not reuse a frame
// buffer while anything decoded from it is alive.
//
// # Example
//
//	buf := make([]byte, 0, 64<<10)
//	for {
//		frame, err := protocol.ReadFrame(conn, maxRequestBytes, buf)
//		if err != nil {
//			return err // io.EOF: the client closed between requests
//		}
//		h, req, err := protocol.ParseRequest(frame)
//		if errors.Is(err, protocol.ErrUnsupportedVersion) && h.Key == 18 {
//			// answer ApiVersions v0 with UNSUPPORTED_VERSION
//		} else if err != nil {
//			return err // close the connection
//		}
//		resp := handle(h, req) // resp.SetVersion(h.Version)
//		out := protocol.AppendResponse(nil, h.CorrelationID, resp)
//		if _, err := conn.Write(out); err != nil {
//			return err
//		}
//		buf = frame[:0]
//	}
package protocol
