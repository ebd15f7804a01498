// Package dlq inspects share groups' dead-letter topics (KIP-1191) and
// redrives their records back to the topics they came from.
//
// It is a Kafka client (franz-go): it runs in the sluice command and behind
// the broker's admin HTTP endpoints, and works against any cluster whose
// dead-letter records carry KIP-1191's context headers.
//
// Redrive moves each selected record exactly once even when interrupted and
// run again. It consumes the dead-letter topic in a consumer group and
// produces with a transactional producer, both named from the topic and the
// selection, and commits the consumed offsets in the same transaction as the
// produced records (read_committed, KIP-447 stable offsets). An interrupted
// run aborts its open transaction; the next run with the same selection
// resumes after the last committed one. Two concurrent runs of the same
// selection fence each other through the transactional id. Runs with
// different selections are independent: records matching both are moved by
// each.
//
// A record is moved with the key, value and headers it carries in the
// dead-letter topic minus the __dlq.errors.* context, plus a
// sluice.redrive.source header naming where it came from. Dead-letter
// records written without errors.deadletterqueue.copy.record.enable (Kafka's
// default) carry no key or value, only a pointer: redrive re-reads the
// source record (read_committed, from its leader) and moves that. A pointer
// whose source record is gone (retention, compaction) is counted as
// unmovable, as is a record without usable context headers or whose source
// partition does not exist.
package dlq

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// KIP-1191's context headers on every dead-letter record (UTF-8 values).
const (
	HeaderTopic         = "__dlq.errors.topic"
	HeaderPartition     = "__dlq.errors.partition"
	HeaderOffset        = "__dlq.errors.offset"
	HeaderGroup         = "__dlq.errors.group"
	HeaderDeliveryCount = "__dlq.errors.delivery.count"
	HeaderMessage       = "__dlq.errors.message"
	// HeaderPrefix starts every context header.
	HeaderPrefix = "__dlq.errors."
	// HeaderRedriveSource is added to a redriven record: the dead-letter
	// topic, partition and offset it was moved from ("topic/partition/offset").
	HeaderRedriveSource = "sluice.redrive.source"
)

// Reason is why a record was dead-lettered.
type Reason string

// Reasons, from __dlq.errors.message.
const (
	ReasonRejected      Reason = "rejected"       // a consumer rejected it
	ReasonDeliveryLimit Reason = "delivery_limit" // it ran out of deliveries
	ReasonUnknown       Reason = "unknown"        // no or another message
)

// ReasonOf classifies a __dlq.errors.message value as Kafka's and Sluice's
// writers word it.
func ReasonOf(message string) Reason {
	m := strings.ToLower(message)
	switch {
	case strings.Contains(m, "rejected"):
		return ReasonRejected
	case strings.Contains(m, "delivery count"):
		return ReasonDeliveryLimit
	}
	return ReasonUnknown
}

// Header is one record header.
type Header struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Record is one dead-letter record with its parsed context.
type Record struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Timestamp time.Time `json:"timestamp"`

	SourceTopic     string `json:"source_topic"`
	SourcePartition int32  `json:"source_partition"`
	SourceOffset    int64  `json:"source_offset"`
	Group           string `json:"group"`
	DeliveryCount   int    `json:"delivery_count"`
	Reason          Reason `json:"reason"`
	Message         string `json:"message"`

	// Key and Value are the copied record's (nil without a copy); Inspect
	// lists at most their first 1 KiB, KeyBytes and ValueBytes are the
	// full sizes.
	Key        []byte   `json:"key,omitempty"`
	Value      []byte   `json:"value,omitempty"`
	KeyBytes   int      `json:"key_bytes"`
	ValueBytes int      `json:"value_bytes"`
	Headers    []Header `json:"headers"`

	// Problem is set when the context headers are missing or malformed:
	// such a record cannot be routed back.
	Problem string `json:"problem,omitempty"`
}

// HasCopy reports whether the record carries a copy of the original
// (errors.deadletterqueue.copy.record.enable was on when it was written);
// without one it only points at the source record.
func (r *Record) HasCopy() bool { return r.Key != nil || r.Value != nil }

// parseContext fills r's context fields from its headers.
func (r *Record) parseContext() {
	var have int
	var problems []string
	for _, h := range r.Headers {
		var err error
		switch h.Key {
		case HeaderTopic:
			r.SourceTopic, have = h.Value, have|1
		case HeaderPartition:
			var n int64
			n, err = strconv.ParseInt(h.Value, 10, 32)
			r.SourcePartition, have = int32(n), have|2
			if err == nil && n < 0 {
				err = errors.New("negative")
			}
		case HeaderOffset:
			r.SourceOffset, err = strconv.ParseInt(h.Value, 10, 64)
		case HeaderGroup:
			r.Group = h.Value
		case HeaderDeliveryCount:
			r.DeliveryCount, err = strconv.Atoi(h.Value)
		case HeaderMessage:
			r.Message = h.Value
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("bad %s %q", h.Key, h.Value))
		}
	}
	r.Reason = ReasonOf(r.Message)
	if have&1 == 0 || r.SourceTopic == "" {
		problems = append(problems, "no "+HeaderTopic)
	}
	if have&2 == 0 {
		problems = append(problems, "no "+HeaderPartition)
	}
	r.Problem = strings.Join(problems, "; ")
}

// Selection chooses the dead-letter records a redrive moves (or an
// inspection lists). Zero fields select everything.
type Selection struct {
	// SourceTopic keeps records from this source topic.
	SourceTopic string `json:"source_topic,omitempty"`
	// Reason keeps records dead-lettered for this reason.
	Reason Reason `json:"reason,omitempty"`
	// Group keeps records of this share group.
	Group string `json:"group,omitempty"`
	// FromOffset and UntilOffset bound the dead-letter topic's offsets
	// (every partition): FromOffset inclusive, UntilOffset exclusive, 0
	// for no bound.
	FromOffset  int64 `json:"from_offset,omitempty"`
	UntilOffset int64 `json:"until_offset,omitempty"`
	// Max bounds the records moved by one run (0: all). It is not part of
	// the selection's identity: a rerun moves up to Max more.
	Max int `json:"max,omitempty"`
}

// Validate checks s.
func (s Selection) Validate() error {
	switch s.Reason {
	case "", ReasonRejected, ReasonDeliveryLimit, ReasonUnknown:
	default:
		return fmt.Errorf("dlq: reason %q: want %s, %s or %s", s.Reason, ReasonRejected, ReasonDeliveryLimit, ReasonUnknown)
	}
	if s.FromOffset < 0 || s.UntilOffset < 0 || s.Max < 0 {
		return errors.New("dlq: offsets and max must not be negative")
	}
	if s.UntilOffset > 0 && s.UntilOffset <= s.FromOffset {
		return errors.New("dlq: until_offset must be above from_offset")
	}
	return nil
}

// Match reports whether r is selected.
func (s Selection) Match(r *Record) bool {
	switch {
	case s.SourceTopic != "" && r.SourceTopic != s.SourceTopic,
		s.Reason != "" && r.Reason != s.Reason,
		s.Group != "" && r.Group != s.Group,
		r.Offset < s.FromOffset,
		s.UntilOffset > 0 && r.Offset >= s.UntilOffset:
		return false
	}
	return true
}

// ID names the redrive of s from topic: its transactional id and consumer
// group. It depends on the topic and the filters, not on Max.
func (s Selection) ID(topic string) string {
	var b bytes.Buffer
	for _, f := range []string{topic, s.SourceTopic, string(s.Reason), s.Group,
		strconv.FormatInt(s.FromOffset, 10), strconv.FormatInt(s.UntilOffset, 10)} {
		b.WriteString(strconv.Itoa(len(f)))
		b.WriteByte(':')
		b.WriteString(f)
	}
	sum := sha256.Sum256(b.Bytes())
	name := topic
	if len(name) > 100 {
		name = name[:100]
	}
	return "sluice-redrive-" + name + "-" + hex.EncodeToString(sum[:8])
}

// moveHeaders are the headers a redriven record gets: r's own minus the
// dead-letter context, plus where it was moved from.
func moveHeaders(topic string, r *Record) []Header {
	out := make([]Header, 0, len(r.Headers)+1)
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, HeaderPrefix) && h.Key != HeaderRedriveSource {
			out = append(out, h)
		}
	}
	return append(out, Header{Key: HeaderRedriveSource,
		Value: topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)})
}

// ageBucket names the age class of a record for Summary.ByAge.
func ageBucket(age time.Duration) string {
	switch {
	case age < time.Hour:
		return "<1h"
	case age < 24*time.Hour:
		return "1h-24h"
	case age < 7*24*time.Hour:
		return "1d-7d"
	}
	return ">7d"
}
