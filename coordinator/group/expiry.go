package group

// Offset expiry (KIP-211). Every offsets.retention.check.interval the
// coordinator looks, partition by partition, for committed offsets older
// than offsets.retention.minutes, writes tombstones for them, and then
// deletes groups left Empty with no offsets (Kafka's cleanupGroupMetadata).
//
// Which offsets can expire, and from when, follows Kafka:
//   - simple groups (no protocol type): every offset, from its commit time;
//   - classic groups that are Empty: every offset, from when the group
//     became Empty (from the commit time if that is unknown);
//   - Stable classic "consumer" groups: offsets of topics no member
//     subscribes to, from their commit time;
//   - KIP-848 groups: offsets of topics no member subscribes to, from their
//     commit time;
//   - commits made with an explicit v2-v4 retention expire at that time;
//   - a commit still being written never expires, nor does an offset while
//     a transaction has a pending offset for its partition, nor is a group
//     with pending transactional offsets deleted (Kafka's
//     OffsetMetadataManager.cleanupExpiredOffsets). A transactional offset
//     that its COMMIT made the committed one ages from its TxnOffsetCommit,
//     whose time its record carries.

import (
	"slices"
	"time"
)

func (c *Coordinator) scheduleExpiryLocked() {
	c.mu.expiry = c.afterFunc(c.cfg.OffsetsRetentionCheckInterval, func() {
		c.expireOffsets()
		c.mu.Lock()
		if !c.mu.closed {
			c.scheduleExpiryLocked()
		}
		c.mu.Unlock()
	})
}

// expireOffsets runs one expiry pass over every loaded partition.
func (c *Coordinator) expireOffsets() {
	for p := range c.cfg.NumPartitions {
		c.expirePartition(p)
	}
}

func (c *Coordinator) expirePartition(p int32) {
	c.mu.Lock()
	loaded := !c.mu.closed && c.mu.parts[p] == partitionLoaded
	c.mu.Unlock()
	if !loaded {
		return
	}
	pm := &c.persistMu[p]
	pm.Lock()
	defer pm.Unlock()
	c.mu.Lock()
	if c.mu.closed || c.mu.parts[p] != partitionLoaded {
		c.mu.Unlock()
		return
	}
	now := c.clock.Now()
	var records []Record
	var ids []string
	for id, g := range c.mu.groups {
		if g.partition == p {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		g := c.mu.groups[id]
		expired := c.expiredOffsetsLocked(g, now)
		for _, tp := range expired {
			records = append(records, Record{Key: offsetKey(g.id, tp.topic, tp.partition)})
			delete(g.offsets, tp)
		}
		c.mu.stats.expired += uint64(len(expired))
		if len(expired) > 0 {
			c.log.Info("expired committed offsets", "group", g.id, "offsets", len(expired))
		}
		if g.kind != kindShare && !g.hasMembers() && len(g.offsets) == 0 && len(g.inflight) == 0 && g.txn.empty() && (g.kind == kindConsumer || g.state == stateEmpty) {
			records = append(records, metadataTombstonesLocked(g)...)
			stopTimerLocked(g)
			delete(c.mu.groups, id)
			c.log.Info("deleted empty group without offsets", "group", g.id)
		}
	}
	c.mu.Unlock()
	if len(records) == 0 {
		return
	}
	if err := c.cfg.Persister.Persist(c.ctx, p, records); err != nil {
		// Memory already dropped them; after a reload they come back
		// and expire again.
		c.log.Warn("writing offset expiry tombstones failed", "partition", p, "err", err)
	}
}

// expiredOffsetsLocked lists g's offsets that have expired by now.
func (c *Coordinator) expiredOffsetsLocked(g *group, now time.Time) []topicPartition {
	commitBase := func(o committedOffset) int64 { return o.commitTime }
	base := commitBase
	var subscribed map[string]bool
	switch {
	case g.kind == kindConsumer:
		subscribed = g.cg.subscribedTopicNames()
	case g.protocolType == "":
	case g.state == stateEmpty:
		if !g.stateSince.IsZero() {
			since := g.stateSince.UnixMilli()
			base = func(committedOffset) int64 { return since }
		}
	case g.state == stateStable && g.protocolType == "consumer":
		names, known := classicSubscribedTopics(g)
		if !known {
			return nil
		}
		subscribed = names
	default:
		return nil
	}
	nowMs, retention := now.UnixMilli(), c.cfg.OffsetsRetention.Milliseconds()
	var out []topicPartition
	for _, tp := range sortedOffsets(g.offsets) {
		o := g.offsets[tp]
		if subscribed[tp.topic] || g.inflight[tp] > 0 || g.txn.has(tp) {
			continue
		}
		if o.expireTime >= 0 {
			if nowMs >= o.expireTime {
				out = append(out, tp)
			}
			continue
		}
		if nowMs-base(o) >= retention {
			out = append(out, tp)
		}
	}
	return out
}
