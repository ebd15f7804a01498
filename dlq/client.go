package dlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config says how to reach the cluster.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Opts are more client options (TLS, SASL, a dialer), added to every
	// client this package makes.
	Opts []kgo.Opt
	// Logger receives progress at debug level; nil discards it.
	Logger *slog.Logger
}

func (c Config) opts(more ...kgo.Opt) []kgo.Opt {
	out := append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...)}, c.Opts...)
	return append(out, more...)
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// ErrNoTopic is returned for a dead-letter topic that does not exist.
var ErrNoTopic = errors.New("dlq: topic does not exist")

// Limits of one call.
const (
	// DefaultListLimit is how many records Inspect lists by default.
	DefaultListLimit = 100
	// MaxListLimit bounds the records Inspect lists.
	MaxListLimit = 10000
	// redriveBatch bounds the records polled, and so moved, per transaction.
	redriveBatch = 500
	// idleLimit ends a redrive that made no progress for this long while
	// records remained (a group that cannot join, a stuck partition).
	idleLimit = 2 * time.Minute
	// pollWait bounds one poll.
	pollWait = time.Second
	// maxSourceTopics bounds the source topics whose partition counts a
	// redrive remembers, and those Inspect counts apart (the rest are
	// counted under OtherSourceTopics).
	maxSourceTopics = 1000
	// listPreview bounds the key and value bytes Inspect lists per record
	// (KeyBytes and ValueBytes give the full sizes).
	listPreview = 1024
)

// Summary is what Inspect found.
type Summary struct {
	Topic string `json:"topic"`
	// Total counts the selected records up to the end offsets seen at the
	// start; Unroutable those without usable context headers.
	Total      int `json:"total"`
	Unroutable int `json:"unroutable"`
	// WithoutCopy counts records that only point at their source record
	// (redrive re-reads it).
	WithoutCopy   int             `json:"without_copy"`
	ByReason      map[Reason]int  `json:"by_reason"`
	BySourceTopic map[string]int  `json:"by_source_topic"`
	ByAge         map[string]int  `json:"by_age"`
	Oldest        time.Time       `json:"oldest,omitzero"`
	Newest        time.Time       `json:"newest,omitzero"`
	EndOffsets    map[int32]int64 `json:"end_offsets"`
	Records       []Record        `json:"records"`
	Truncated     bool            `json:"truncated"` // more records were selected than listed
}

// InspectOptions narrow an inspection.
type InspectOptions struct {
	// Selection filters the records counted and listed (Max is ignored).
	Selection Selection
	// Limit is how many records to list: 0 for DefaultListLimit, at most
	// MaxListLimit; -1 lists none.
	Limit int
	// Now is the clock for ages; zero means time.Now.
	Now time.Time
}

// Inspect reads topic from its start to its read_committed end and counts
// the selected records by reason, source topic and age, listing the first
// Limit of them.
func Inspect(ctx context.Context, cfg Config, topic string, o InspectOptions) (Summary, error) {
	if err := o.Selection.Validate(); err != nil {
		return Summary{}, err
	}
	limit := o.Limit
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0:
		limit = 0
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	adm, err := kgo.NewClient(cfg.opts()...)
	if err != nil {
		return Summary{}, err
	}
	defer adm.Close()
	ends, err := endOffsets(ctx, kadm.NewClient(adm), topic)
	if err != nil {
		return Summary{}, err
	}
	s := Summary{Topic: topic, ByReason: map[Reason]int{}, BySourceTopic: map[string]int{}, ByAge: map[string]int{},
		EndOffsets: ends, Records: []Record{}}
	pos := map[int32]int64{}
	start := map[string]map[int32]kgo.Offset{topic: {}}
	for p, end := range ends {
		if end > 0 {
			start[topic][p] = kgo.NewOffset().AtStart()
		}
	}
	if len(start[topic]) == 0 {
		return s, nil
	}
	cl, err := kgo.NewClient(cfg.opts(kgo.ConsumePartitions(start), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return Summary{}, err
	}
	defer cl.Close()
	idleSince := time.Now()
	for !reached(pos, ends) {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		if time.Since(idleSince) > idleLimit {
			return s, fmt.Errorf("dlq: inspect %s: no progress for %s", topic, idleLimit)
		}
		pctx, cancel := context.WithTimeout(ctx, pollWait)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := fetchErr(fs); err != nil {
			return s, err
		}
		fs.EachRecord(func(kr *kgo.Record) {
			idleSince = time.Now()
			pos[kr.Partition] = kr.Offset + 1
			if kr.Offset >= ends[kr.Partition] {
				return
			}
			r := fromKgo(kr)
			if !o.Selection.Match(&r) {
				return
			}
			s.add(&r, now, limit)
		})
	}
	return s, nil
}

func (s *Summary) add(r *Record, now time.Time, limit int) {
	s.Total++
	if r.Problem != "" {
		s.Unroutable++
	} else if !r.HasCopy() {
		s.WithoutCopy++
	}
	s.ByReason[r.Reason]++
	if r.SourceTopic != "" {
		if _, ok := s.BySourceTopic[r.SourceTopic]; ok || len(s.BySourceTopic) < maxSourceTopics {
			s.BySourceTopic[r.SourceTopic]++
		} else {
			s.BySourceTopic[OtherSourceTopics]++
		}
	}
	s.ByAge[ageBucket(now.Sub(r.Timestamp))]++
	if s.Oldest.IsZero() || r.Timestamp.Before(s.Oldest) {
		s.Oldest = r.Timestamp
	}
	if r.Timestamp.After(s.Newest) {
		s.Newest = r.Timestamp
	}
	if len(s.Records) < limit {
		l := *r
		l.Key, l.Value = preview(r.Key), preview(r.Value)
		s.Records = append(s.Records, l)
	} else {
		s.Truncated = true
	}
}

// OtherSourceTopics counts, in Summary.BySourceTopic, the records of source
// topics past the first 1000 distinct ones.
const OtherSourceTopics = "(other)"

// preview is b cut to listPreview bytes.
func preview(b []byte) []byte {
	if len(b) > listPreview {
		return b[:listPreview:listPreview]
	}
	return b
}

// fromKgo converts a consumed record.
func fromKgo(kr *kgo.Record) Record {
	r := Record{Partition: kr.Partition, Offset: kr.Offset, Timestamp: kr.Timestamp, Key: kr.Key, Value: kr.Value,
		KeyBytes: len(kr.Key), ValueBytes: len(kr.Value), Headers: make([]Header, 0, len(kr.Headers))}
	for _, h := range kr.Headers {
		r.Headers = append(r.Headers, Header{Key: h.Key, Value: string(h.Value)})
	}
	r.parseContext()
	return r
}

// endOffsets lists topic's read_committed end offsets (last stable
// offsets) by partition.
func endOffsets(ctx context.Context, adm *kadm.Client, topic string) (map[int32]int64, error) {
	listed, err := adm.ListCommittedOffsets(ctx, topic)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("%w: %s", ErrNoTopic, topic)
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: end offsets of %s: %w", topic, err)
	}
	parts, ok := listed[topic]
	if !ok || len(parts) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoTopic, topic)
	}
	out := make(map[int32]int64, len(parts))
	for p, lo := range parts {
		if errors.Is(lo.Err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("%w: %s", ErrNoTopic, topic)
		}
		if lo.Err != nil {
			return nil, fmt.Errorf("dlq: end offset of %s-%d: %w", topic, p, lo.Err)
		}
		out[p] = lo.Offset
	}
	return out, nil
}

// reached reports whether every partition's position is at its end.
func reached(pos, ends map[int32]int64) bool {
	for p, end := range ends {
		if pos[p] < end {
			return false
		}
	}
	return true
}

// fetchErr is the first fetch error other than the poll deadline.
func fetchErr(fs kgo.Fetches) error {
	for _, fe := range fs.Errors() {
		if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
			continue
		}
		return fmt.Errorf("dlq: fetch %s-%d: %w", fe.Topic, fe.Partition, fe.Err)
	}
	return nil
}
