package replication

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// leaderScript runs testdata/leader scripts. Commands:
//
//	log                          input "<epoch> <count>" lines appended to the log
//	new-leader id= [leader=] replicas=() isr=() epoch= partition-epoch= [hw=] [min-isr=] [lag=] [t=]
//	append n= [epoch=] [t=]      leader append + LogAppended
//	fetch replica= offset= [last-epoch=] [current-epoch=] [t=]
//	tick t=
//	isr-result [err=NAME] [partition-epoch=] [isr=()] [leader-epoch=] [t=]
//	                             outcome of the pending ISR change; by default
//	                             accepted as proposed with partition epoch + 1
//	update leader= epoch= partition-epoch= isr=() [replicas=()] [t=]
//	wait-acks id= last= deadline= [t=]
//	check-produce acks=
//	check-list-offsets
//	epoch-end epoch= [current-epoch=]
//	ineligible ids=()
//	min-isr n=
//	delete-before offset=        advance the log start offset
//	resign
//	state
type leaderScript struct {
	log       *memLog
	l         *Leader
	now       time.Time
	nextValue int64
}

func (h *leaderScript) run(t *testing.T, d *datadriven.TestData) string {
	h.now = argTime(t, d, h.now)
	var b strings.Builder
	switch d.Cmd {
	case "log":
		appendInput(t, d, h.log, &h.nextValue)
		return h.log.String()
	case "new-leader":
		h.newLeader(t, d, &b)
	case "append":
		epoch := LeaderEpoch(argInt(t, d, "epoch", int64(h.l.LeaderEpoch())))
		for range argInt(t, d, "n", 1) {
			h.nextValue++
			h.log.append(record{epoch: epoch, value: h.nextValue})
		}
		fmt.Fprintf(&b, "leo=%d\n", h.log.LogEndOffset())
		fmtLeaderReady(&b, h.l.LogAppended(h.now))
	case "fetch":
		h.fetch(t, d, &b)
	case "tick":
		fmtLeaderReady(&b, h.l.Tick(h.now))
	case "isr-result":
		h.isrResult(t, d, &b)
	case "update":
		st := PartitionState{
			Leader: int32(argInt(t, d, "leader", 0)), LeaderEpoch: LeaderEpoch(argInt(t, d, "epoch", 0)),
			PartitionEpoch: int32(argInt(t, d, "partition-epoch", 0)), ISR: argIDs(t, d, "isr"),
			Replicas: argIDs(t, d, "replicas"),
		}
		if st.Replicas == nil {
			st.Replicas = h.l.Replicas()
		}
		rd, err := h.l.Update(st, h.now)
		if err != nil {
			fmt.Fprintf(&b, "error: %v\n", err)
		}
		fmtLeaderReady(&b, rd)
	case "wait-acks":
		deadline := scriptBase.Add(argDuration(t, d, "deadline", 0))
		fmtLeaderReady(&b, h.l.WaitForAcks(AckID(argInt(t, d, "id", 0)), argInt(t, d, "last", 0), deadline, h.now))
	case "check-produce":
		fmt.Fprintf(&b, "%s\n", errName(h.l.CheckProduce(int16(argInt(t, d, "acks", -1)))))
	case "check-list-offsets":
		fmt.Fprintf(&b, "%s\n", errName(h.l.CheckListOffsets()))
	case "epoch-end":
		ee, err := h.l.EndOffsetForEpoch(LeaderEpoch(argInt(t, d, "current-epoch", -1)), LeaderEpoch(argInt(t, d, "epoch", 0)))
		fmt.Fprintf(&b, "%s epoch=%d end=%d\n", errName(err), ee.Epoch, ee.EndOffset)
	case "ineligible":
		h.l.SetIneligible(argIDs(t, d, "ids"))
		return "ok"
	case "min-isr":
		h.l.SetMinInsyncReplicas(int(argInt(t, d, "n", 1)))
		return "ok"
	case "delete-before":
		h.log.deleteBefore(argInt(t, d, "offset", 0))
		return h.log.String()
	case "resign":
		fmtLeaderReady(&b, h.l.Resign())
	case "state":
		h.state(&b)
	default:
		d.Fatalf(t, "unknown command %s", d.Cmd)
	}
	return strings.TrimSpace(b.String())
}

func (h *leaderScript) newLeader(t *testing.T, d *datadriven.TestData, b *strings.Builder) {
	cfg := LeaderConfig{
		ReplicaID:         int32(argInt(t, d, "id", 1)),
		MinInsyncReplicas: int(argInt(t, d, "min-isr", 1)),
		ReplicaLagTimeMax: argDuration(t, d, "lag", 10*time.Second),
	}
	st := PartitionState{
		Leader: int32(argInt(t, d, "leader", int64(cfg.ReplicaID))), LeaderEpoch: LeaderEpoch(argInt(t, d, "epoch", 0)),
		PartitionEpoch: int32(argInt(t, d, "partition-epoch", 0)),
		Replicas:       argIDs(t, d, "replicas"), ISR: argIDs(t, d, "isr"),
	}
	l, rd, err := NewLeader(cfg, h.log, st, argInt(t, d, "hw", 0), h.now)
	if err != nil {
		fmt.Fprintf(b, "error: %v\n", err)
		return
	}
	h.l = l
	fmt.Fprintf(b, "epoch-start=%d\n", l.EpochStartOffset())
	fmtLeaderReady(b, rd)
}

func (h *leaderScript) fetch(t *testing.T, d *datadriven.TestData, b *strings.Builder) {
	dec, rd := h.l.FollowerFetch(FollowerFetch{
		ReplicaID:          int32(argInt(t, d, "replica", 0)),
		CurrentLeaderEpoch: LeaderEpoch(argInt(t, d, "current-epoch", -1)),
		FetchOffset:        argInt(t, d, "offset", 0),
		LastFetchedEpoch:   LeaderEpoch(argInt(t, d, "last-epoch", -1)),
		Now:                h.now,
	})
	switch {
	case dec.Err != nil:
		fmt.Fprintf(b, "fetch: %s\n", errName(dec.Err))
	case dec.DivergingEpoch != nil:
		fmt.Fprintf(b, "fetch: diverging epoch=%d end=%d\n", dec.DivergingEpoch.Epoch, dec.DivergingEpoch.EndOffset)
	default:
		fmt.Fprintf(b, "fetch: read [%d, %d) hw=%d lso=%d\n", argInt(t, d, "offset", 0), h.log.LogEndOffset(),
			dec.HighWatermark, dec.LogStartOffset)
	}
	fmtLeaderReady(b, rd)
}

func (h *leaderScript) isrResult(t *testing.T, d *datadriven.TestData, b *strings.Builder) {
	c, ok := h.l.PendingISRChange()
	if !ok {
		d.Fatalf(t, "no pending isr change")
	}
	st := PartitionState{
		Leader:         c.Leader,
		LeaderEpoch:    LeaderEpoch(argInt(t, d, "leader-epoch", int64(c.LeaderEpoch))),
		PartitionEpoch: int32(argInt(t, d, "partition-epoch", int64(c.PartitionEpoch)+1)),
		Replicas:       h.l.Replicas(), ISR: c.ISR,
	}
	if d.HasArg("isr") {
		st.ISR = argIDs(t, d, "isr")
	}
	fmtLeaderReady(b, h.l.ISRChangeResult(c, st, argErr(t, d), h.now))
}

func (h *leaderScript) state(b *strings.Builder) {
	fmt.Fprintf(b, "leader-epoch=%d partition-epoch=%d hw=%d leo=%d epoch-start=%d\n",
		h.l.LeaderEpoch(), h.l.PartitionEpoch(), h.l.HighWatermark(), h.log.LogEndOffset(), h.l.EpochStartOffset())
	fmt.Fprintf(b, "isr=%s maximal=%s under-replicated=%v under-min-isr=%v\n",
		fmtIDs(h.l.ISR()), fmtIDs(h.l.MaximalISR()), h.l.UnderReplicated(), h.l.UnderMinISR())
	if c, ok := h.l.PendingISRChange(); ok {
		fmt.Fprintf(b, "pending: %s\n", c)
	}
	for _, id := range h.l.Replicas() {
		if f := h.l.followers[id]; f != nil {
			caught := "never"
			if !f.lastCaughtUp.IsZero() {
				caught = "t=" + f.lastCaughtUp.Sub(scriptBase).String()
			}
			fmt.Fprintf(b, "follower %d: leo=%d caught-up=%s\n", id, f.leo, caught)
		}
	}
}
