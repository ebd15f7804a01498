package replication

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// followerScript runs testdata/follower scripts; the script plays the
// leader. Commands:
//
//	log                              input "<epoch> <count>" lines appended to the log
//	new-follower id= [epoch-end-mode] [backoff=]
//	become leader= epoch= hw= [t=]
//	next [t=]                        the request the follower sends now
//	fetch-result [err=] [diverging=(epoch,end)] [hw=] [lso=] [offset=] [t=]
//	                                 answer the last request (offset= makes it
//	                                 answer another one); input lines are the
//	                                 records ("<epoch> <count>")
//	epoch-end-result [err=] epoch= end= [t=]
//	offsets-result [err=] start= end= [t=]
//	failed [t=]                      the last request got no answer
//	delete-before offset=            advance the local log start offset
//	drop-epoch-cache                 forget the epoch cache (a log without epochs)
//	state
type followerScript struct {
	log       *memLog
	f         *Follower
	now       time.Time
	last      Request
	nextValue int64
}

func (h *followerScript) run(t *testing.T, d *datadriven.TestData) string {
	h.now = argTime(t, d, h.now)
	var b strings.Builder
	switch d.Cmd {
	case "log":
		appendInput(t, d, h.log, &h.nextValue)
		return h.log.String()
	case "new-follower":
		h.f = NewFollower(FollowerConfig{
			ReplicaID:                        int32(argInt(t, d, "id", 2)),
			TruncateWithOffsetForLeaderEpoch: d.HasArg("epoch-end-mode"),
			FetchBackoff:                     argDuration(t, d, "backoff", time.Second),
		}, h.log)
		return "ok"
	case "become":
		rd, err := h.f.BecomeFollower(int32(argInt(t, d, "leader", 1)), LeaderEpoch(argInt(t, d, "epoch", 0)),
			argInt(t, d, "hw", 0), h.now)
		if err != nil {
			fmt.Fprintf(&b, "error: %v\n", err)
		}
		h.apply(&b, rd, nil)
	case "next":
		h.last = h.f.Next(h.now)
		return fmtRequest(h.last)
	case "fetch-result":
		h.fetchResult(t, d, &b)
	case "epoch-end-result":
		r := EpochEndResult{Request: h.last, Err: argErr(t, d), EpochEndOffset: EpochEndOffset{
			Epoch: LeaderEpoch(argInt(t, d, "epoch", -1)), EndOffset: argInt(t, d, "end", -1)}}
		h.apply(&b, h.f.HandleEpochEnd(r, h.now), nil)
	case "offsets-result":
		r := LeaderOffsetsResult{Request: h.last, Err: argErr(t, d),
			LogStartOffset: argInt(t, d, "start", 0), LogEndOffset: argInt(t, d, "end", 0)}
		h.apply(&b, h.f.HandleLeaderOffsets(r, h.now), nil)
	case "failed":
		h.f.RequestFailed(h.last, h.now)
		return "ok"
	case "delete-before":
		h.log.deleteBefore(argInt(t, d, "offset", 0))
		return h.log.String()
	case "drop-epoch-cache":
		h.log.epochs = nil
		return "ok"
	case "state":
		fmt.Fprintf(&b, "leader=%d epoch=%d hw=%d fenced=%v log=%s\n",
			h.f.Leader(), h.f.LeaderEpoch(), h.f.HighWatermark(), h.f.Fenced(), h.log)
	default:
		d.Fatalf(t, "unknown command %s", d.Cmd)
	}
	return strings.TrimSpace(b.String())
}

func (h *followerScript) fetchResult(t *testing.T, d *datadriven.TestData, b *strings.Builder) {
	r := FetchResult{Request: h.last, Err: argErr(t, d), HighWatermark: argInt(t, d, "hw", 0),
		LogStartOffset: argInt(t, d, "lso", 0)}
	r.Request.FetchOffset = argInt(t, d, "offset", r.Request.FetchOffset)
	if d.HasArg("diverging") {
		var e, end int64
		d.ScanArgs(t, "diverging", &e, &end)
		r.DivergingEpoch = &EpochEndOffset{Epoch: LeaderEpoch(e), EndOffset: end}
	}
	recs := appendInput(t, d, nil, &h.nextValue)
	r.HasRecords = len(recs) > 0
	h.apply(b, h.f.HandleFetch(r, h.now), recs)
}

// apply does what the Ready says, as a driver would, and prints it.
func (h *followerScript) apply(b *strings.Builder, rd FollowerReady, recs []record) {
	fmtFollowerReady(b, rd)
	if tr := rd.Truncate; tr != nil {
		if tr.Fully {
			h.log.truncateFullyAndStartAt(tr.Offset)
		} else {
			h.log.truncateTo(tr.Offset)
		}
	}
	if rd.LogStartOffsetAdvanced {
		h.log.deleteBefore(rd.LogStartOffset)
	}
	if rd.Append {
		h.log.append(recs...)
		after := h.f.Appended()
		b.WriteString("appended:\n")
		fmtFollowerReady(b, after)
		if after.LogStartOffsetAdvanced {
			h.log.deleteBefore(after.LogStartOffset)
		}
	}
	fmt.Fprintf(b, "log=%s\n", h.log)
}
