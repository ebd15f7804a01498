package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Group kinds of groupStats.Kind.
const (
	kindShare   = "share"
	kindClassic = "classic"
)

// groupConfigTimeout bounds setting the share group's offset reset config,
// retries of retriable errors included.
const groupConfigTimeout = 30 * time.Second

// errGroupStalled means no member of the group got a new record for
// stallTimeout.
var errGroupStalled = errors.New("sluice-bench: group consumption stalled")

// groupStats is what --mode share or --mode group measured: --members
// clients in one share group (KIP-932) or one classic consumer group
// reading every record the produce phase wrote, each member acknowledging
// (share: accepting; classic: committing the offsets of) everything a poll
// returned before polling again.
type groupStats struct {
	Kind    string `json:"kind"` // kindShare or kindClassic
	Group   string `json:"group"`
	Members int    `json:"members"`
	// MembersWithRecords is how many members got at least one record (a
	// classic group gives each partition to one member; a share group
	// can give one partition to all).
	MembersWithRecords int `json:"members_with_records"`
	// JoinMs is the time from starting the members to the first record a
	// poll returned; the consume phase's records/s run from then to the
	// last acknowledgement, so they leave the group's join out.
	JoinMs float64 `json:"join_ms"`
	// Ack is the time, per record, from the poll that returned it to the
	// broker's confirmation of its acknowledgement: share, MarkAcks(accept)
	// then FlushAcks, which returns once the broker answered every ack
	// sent; classic, CommitUncommittedOffsets. It includes the member's
	// own work on the poll (counting the keys), which is small.
	Ack   *latency `json:"ack_latency,omitempty"`
	Polls int64    `json:"polls"`
	// Redelivered counts share records delivered with a delivery count
	// above 1 (released by a lost session or an expired lock).
	Redelivered int64 `json:"redelivered,omitempty"`
	// AckErrors counts the partitions of share acknowledgements the broker
	// refused (kgo's ShareAckCallback), or classic commits that failed.
	AckErrors     int64  `json:"ack_errors,omitempty"`
	FirstAckError string `json:"first_ack_error,omitempty"`
}

func (g *groupStats) summary() string {
	s := fmt.Sprintf("%s x%d (%d got records) join %.0f ms", g.Kind, g.Members, g.MembersWithRecords, g.JoinMs)
	if g.Ack != nil {
		s += fmt.Sprintf(" ack p50 %.2f ms p99 %.2f ms", g.Ack.P50Ms, g.Ack.P99Ms)
	}
	if g.Redelivered > 0 {
		s += fmt.Sprintf(" redelivered %d", g.Redelivered)
	}
	if g.AckErrors > 0 {
		s += fmt.Sprintf(" ack errors %d (first: %s)", g.AckErrors, g.FirstAckError)
	}
	return s
}

// groupRun is the members' shared tally.
type groupRun struct {
	want   int64 // distinct records to acknowledge
	cancel context.CancelFunc

	records, bytes, polls, redelivered atomic.Int64

	mu struct {
		sync.Mutex
		seen      seqSet
		hist      *histogram
		confirmed int64 // distinct records whose acknowledgement the broker confirmed
		first     time.Time
		last      time.Time // the latest progress: a record polled or acknowledged
		end       time.Time // when confirmed reached want
		withRecs  map[int]bool
		fetchErrs int64
		firstErr  error
		ackErrs   int64
		firstAck  error
	}
}

func newGroupRun(want int64, cancel context.CancelFunc) *groupRun {
	g := &groupRun{want: want, cancel: cancel}
	g.mu.hist = newHistogram()
	g.mu.withRecs = make(map[int]bool)
	return g
}

// groupName is the group of a --mode share or group run: --group, or one
// per topic and mode.
func groupName(c *config) string {
	if c.group != "" {
		return c.group
	}
	return c.topic + "-" + c.mode
}

// groupConsume runs the consume phase of --mode share or group into
// b.res.Consume and b.res.Group, then checks by key that every produced
// record was acknowledged exactly once.
func (b *bench) groupConsume(ctx context.Context) error {
	c := b.cfg
	if b.sent == 0 {
		return errors.New("group consume: the produce phase wrote no records")
	}
	share := c.mode == modeShare
	gs := &groupStats{Kind: kindClassic, Group: groupName(c), Members: c.members}
	if share {
		gs.Kind = kindShare
		if err := b.setShareOffsetReset(ctx, gs.Group); err != nil {
			return err
		}
	}
	b.res.Group = gs
	if c.deleteTopic {
		defer b.deleteGroup(ctx, gs.Group)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g := newGroupRun(b.sent, cancel)
	clients := make([]*kgo.Client, 0, c.members)
	defer func() { closeAll(clients) }()
	for range c.members {
		cl, err := kgo.NewClient(b.memberOpts(gs.Group, share, g)...)
		if err != nil {
			return fmt.Errorf("group member: %w", err)
		}
		clients = append(clients, cl)
	}
	b.log.Info("group consuming", "kind", gs.Kind, "group", gs.Group, "members", c.members, "records", b.sent)
	spans := b.startCPU()
	start := time.Now()
	g.mu.last = start
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = g.member(runCtx, cl, i, share) }()
	}
	stalled := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); stalled <- g.watch(runCtx) }()
	wg.Wait()
	err := errors.Join(append(errs, <-stalled)...)
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("group consume: %w", ctx.Err())
	}
	b.finishGroup(gs, g, spans, start)
	b.res.Verify = verifySeqs(c.isolation, b.produced, &g.mu.seen)
	if err != nil {
		return err
	}
	if gs.AckErrors > 0 {
		return fmt.Errorf("group consume: %d acknowledgements failed, first: %s", gs.AckErrors, gs.FirstAckError)
	}
	return b.res.Verify.err()
}

// finishGroup fills the consume phase and the group figures once every
// member has stopped.
func (b *bench) finishGroup(gs *groupStats, g *groupRun, spans cpuSpans, start time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	end := g.mu.end
	if end.IsZero() {
		end = g.mu.last
	}
	p := &phase{Records: g.records.Load(), Bytes: g.bytes.Load(), Errors: g.mu.fetchErrs}
	if g.mu.firstErr != nil {
		p.FirstError = g.mu.firstErr.Error()
	}
	first := g.mu.first
	if first.IsZero() {
		first = start
	} else {
		gs.JoinMs = ms(first.Sub(start))
	}
	p.fillRates(end.Sub(first))
	b.stopCPU(spans, p, end.Sub(start))
	b.res.Consume = p
	gs.Ack = latencyOf(g.mu.hist)
	gs.Polls = g.polls.Load()
	gs.Redelivered = g.redelivered.Load()
	gs.MembersWithRecords = len(g.mu.withRecs)
	gs.AckErrors = g.mu.ackErrs
	if g.mu.firstAck != nil {
		gs.FirstAckError = g.mu.firstAck.Error()
	}
}

// memberOpts are the kgo options of one group member.
func (b *bench) memberOpts(group string, share bool, g *groupRun) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(b.seeds...), kgo.ConsumeTopics(b.cfg.topic)}
	if share {
		return append(opts, kgo.ShareGroup(group), kgo.ShareAckCallback(func(_ *kgo.Client, rs kgo.ShareAckResults) {
			for _, r := range rs {
				if r.Err != nil {
					g.ackFailed(fmt.Errorf("%s/%d: %w", r.Topic, r.Partition, r.Err))
				}
			}
		}))
	}
	// A poll's records are committed before the member lets a rebalance
	// take its partitions, so no record is read twice.
	return append(opts, kgo.ConsumerGroup(group), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(), kgo.FetchIsolationLevel(isolationOf(b.cfg.isolation)))
}

func isolationOf(isolation string) kgo.IsolationLevel {
	if isolation == readCommitted {
		return kgo.ReadCommitted()
	}
	return kgo.ReadUncommitted()
}

// member polls until the run is done: it notes every record's key,
// acknowledges the whole poll and waits for the broker to confirm it.
func (g *groupRun) member(ctx context.Context, cl *kgo.Client, idx int, share bool) error {
	if !share {
		// A poll blocks rebalances until AllowRebalance; leaving the
		// group on Close is one.
		defer cl.AllowRebalance()
	}
	for {
		fetches := cl.PollFetches(ctx)
		polled := time.Now()
		if ctx.Err() != nil {
			return nil // done, stalled or the run's context ended
		}
		if fetches.IsClientClosed() {
			return fmt.Errorf("group member %d: %w", idx, kgo.ErrClientClosed)
		}
		if err := g.fetchErrors(fetches); err != nil {
			return err
		}
		n := fetches.NumRecords()
		if n == 0 {
			if !share {
				cl.AllowRebalance()
			}
			continue
		}
		fresh := g.polled(fetches, idx, polled)
		var err error
		if share {
			cl.MarkAcks(kgo.AckAccept)
			err = cl.FlushAcks(ctx)
		} else {
			err = cl.CommitUncommittedOffsets(ctx)
			cl.AllowRebalance()
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if share {
				return fmt.Errorf("group member %d: flush acks: %w", idx, err)
			}
			g.ackFailed(err)
			continue
		}
		g.acked(int64(n), fresh, time.Since(polled))
	}
}

// fetchErrors counts the poll's errors; too many end the run.
func (g *groupRun) fetchErrors(fetches kgo.Fetches) error {
	var err error
	fetches.EachError(func(_ string, _ int32, e error) {
		if errors.Is(e, context.Canceled) || errors.Is(e, context.DeadlineExceeded) {
			return
		}
		g.mu.Lock()
		g.mu.fetchErrs++
		if g.mu.firstErr == nil {
			g.mu.firstErr = e
		}
		if g.mu.fetchErrs > maxFetchErrors {
			err = fmt.Errorf("group consume: %d fetch errors, first: %w", g.mu.fetchErrs, g.mu.firstErr)
		}
		g.mu.Unlock()
	})
	return err
}

// polled notes a poll's records by key and returns how many had not been
// seen before.
func (g *groupRun) polled(fetches kgo.Fetches, idx int, at time.Time) int64 {
	g.polls.Add(1)
	var bytes, redelivered int64
	g.mu.Lock()
	defer g.mu.Unlock()
	before := g.mu.seen.distinct()
	fetches.EachRecord(func(r *kgo.Record) {
		bytes += int64(len(r.Key) + len(r.Value))
		if r.DeliveryCount() > 1 {
			redelivered++
		}
		if len(r.Key) != 8 {
			g.mu.seen.add(-1)
			return
		}
		g.mu.seen.add(int64(binary.BigEndian.Uint64(r.Key)))
	})
	g.records.Add(int64(fetches.NumRecords()))
	g.bytes.Add(bytes)
	g.redelivered.Add(redelivered)
	g.mu.withRecs[idx] = true
	if g.mu.first.IsZero() {
		g.mu.first = at
	}
	g.mu.last = at
	return g.mu.seen.distinct() - before
}

// acked records the acknowledgement latency of a poll of n records, fresh
// of them new, and ends the run once every record was acknowledged.
func (g *groupRun) acked(n, fresh int64, d time.Duration) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for range n {
		g.mu.hist.Record(d)
	}
	g.mu.last = now
	g.mu.confirmed += fresh
	if g.mu.confirmed >= g.want && g.mu.end.IsZero() {
		g.mu.end = now
		g.cancel()
	}
}

func (g *groupRun) ackFailed(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.ackErrs++
	if g.mu.firstAck == nil {
		g.mu.firstAck = err
	}
}

// watch ends the run when no member made progress for stallTimeout.
func (g *groupRun) watch(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		g.mu.Lock()
		idle := time.Since(g.mu.last)
		confirmed := g.mu.confirmed
		g.mu.Unlock()
		if idle >= stallTimeout {
			g.cancel()
			return fmt.Errorf("%w: no progress for %s, %d of %d records acknowledged", errGroupStalled, stallTimeout, confirmed, g.want)
		}
	}
}

// closeAll closes the members at once (each leaves its group).
func closeAll(clients []*kgo.Client) {
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); cl.Close() }()
	}
	wg.Wait()
}

// setShareOffsetReset sets the share group's share.auto.offset.reset to
// earliest (IncrementalAlterConfigs on the GROUP resource), so the group
// reads the records produced before it started.
func (b *bench) setShareOffsetReset(ctx context.Context, group string) error {
	ctx, cancel := context.WithTimeout(ctx, groupConfigTimeout)
	defer cancel()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = group
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name = "share.auto.offset.reset"
	cfg.Op = kmsg.IncrementalAlterConfigOpSet
	cfg.Value = kmsg.StringPtr("earliest")
	res.Configs = append(res.Configs, cfg)
	req.Resources = append(req.Resources, res)
	for {
		err := alterOnce(ctx, b.admCl, req)
		if err == nil || !kerr.IsRetriable(err) || ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("set share.auto.offset.reset of group %q: %w", group, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func alterOnce(ctx context.Context, cl *kgo.Client, req *kmsg.IncrementalAlterConfigsRequest) error {
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if len(resp.Resources) != 1 {
		return fmt.Errorf("%d resources in the answer, want 1", len(resp.Resources))
	}
	if err := kerr.ErrorForCode(resp.Resources[0].ErrorCode); err != nil {
		if m := resp.Resources[0].ErrorMessage; m != nil {
			return fmt.Errorf("%w: %s", err, *m)
		}
		return err
	}
	return nil
}

// deleteGroup removes the group when the run is done; failing to is only
// worth a note.
func (b *bench) deleteGroup(ctx context.Context, group string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	resp, err := b.adm.DeleteGroup(ctx, group)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		b.res.Notes = append(b.res.Notes, "delete group: "+err.Error())
	}
}
