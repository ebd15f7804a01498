package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func followerParams(offsets map[partKey]int64) ([]partKey, map[partKey]kmsg.FetchRequestTopicPartition) {
	var want []partKey
	params := map[partKey]kmsg.FetchRequestTopicPartition{}
	for _, k := range []partKey{{"a", 0}, {"a", 1}, {"b", 0}} {
		off, ok := offsets[k]
		if !ok {
			continue
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset = k.partition, off
		want = append(want, k)
		params[k] = rp
	}
	return want, params
}

func named(req *kmsg.FetchRequest) map[partKey]bool {
	out := map[partKey]bool{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			out[partKey{t.Topic, p.Partition}] = true
		}
	}
	return out
}

// The follower's side of a session: full first, then only changed
// partitions, forgotten ones listed, left-out ones read as unchanged, and
// a session error making the next round full.
func TestFollowerSession(t *testing.T) {
	t.Parallel()
	var s followerSession
	answer := func(sessionID int32, parts ...partKey) *kmsg.FetchResponse {
		resp := kmsg.NewPtrFetchResponse()
		resp.SessionID = sessionID
		for _, k := range parts {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = k.topic
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition, sp.HighWatermark, sp.LogStartOffset = k.partition, 10, 0
			rt.Partitions = append(rt.Partitions, sp)
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	want, params := followerParams(map[partKey]int64{{"a", 0}: 5, {"a", 1}: 5, {"b", 0}: 5})
	req := kmsg.NewPtrFetchRequest()
	sr := s.build(req, want, params)
	if !sr.full || req.SessionEpoch != 0 || len(named(req)) != 3 {
		t.Fatalf("first round: full %v epoch %d named %d", sr.full, req.SessionEpoch, len(named(req)))
	}
	if !s.handle(sr, answer(77, want...)) || s.id != 77 || s.epoch != 1 {
		t.Fatalf("after full: id %d epoch %d", s.id, s.epoch)
	}
	// a/0 moved on, b/0 is no longer fetched.
	want, params = followerParams(map[partKey]int64{{"a", 0}: 8, {"a", 1}: 5})
	req = kmsg.NewPtrFetchRequest()
	sr = s.build(req, want, params)
	if sr.full || req.SessionID != 77 || req.SessionEpoch != 1 {
		t.Fatalf("second round: full %v session %d epoch %d", sr.full, req.SessionID, req.SessionEpoch)
	}
	if n := named(req); len(n) != 1 || !n[partKey{"a", 0}] {
		t.Fatalf("second round named %v, want only a/0", n)
	}
	if len(req.ForgottenTopics) != 1 || req.ForgottenTopics[0].Topic != "b" || req.ForgottenTopics[0].Partitions[0] != 0 {
		t.Fatalf("forgotten %+v, want b/0", req.ForgottenTopics)
	}
	if !s.handle(sr, answer(77)) || s.epoch != 2 || s.parts[partKey{"b", 0}] != nil {
		t.Fatalf("after incremental: epoch %d, b/0 kept %v", s.epoch, s.parts[partKey{"b", 0}] != nil)
	}
	if sp, ok := s.unchanged(partKey{"a", 1}); !ok || sp.HighWatermark != 10 || len(sp.RecordBatches) != 0 {
		t.Fatalf("left-out a/1: %+v %v", sp, ok)
	}
	// Nothing changed: nothing named.
	req = kmsg.NewPtrFetchRequest()
	sr = s.build(req, want, params)
	if len(req.Topics) != 0 || len(req.ForgottenTopics) != 0 {
		t.Fatalf("idle round named %v", named(req))
	}
	// A duplicate answer: the next round is full and closes the session.
	bad := kmsg.NewPtrFetchResponse()
	bad.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
	if s.handle(sr, bad) {
		t.Fatal("session error not reported")
	}
	req = kmsg.NewPtrFetchRequest()
	if sr = s.build(req, want, params); !sr.full || req.SessionID != 77 || req.SessionEpoch != 0 || len(named(req)) != 2 {
		t.Fatalf("after the error: full %v session %d epoch %d named %d", sr.full, req.SessionID, req.SessionEpoch, len(named(req)))
	}
	// The leader lost the session.
	bad.ErrorCode = kerr.FetchSessionIDNotFound.Code
	if s.handle(sr, bad) || s.id != 0 || s.epoch != 0 {
		t.Fatalf("after not found: id %d epoch %d", s.id, s.epoch)
	}
}
