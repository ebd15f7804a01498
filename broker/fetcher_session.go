package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// followerSession is a follower fetcher's side of its KIP-227 fetch
// session with one leader (Kafka's FetchSessionHandler): what the leader's
// session holds, so that each round names only the partitions whose fetch
// parameters changed, forgets those no longer fetched, and reads the
// leader's silence about a partition as "nothing new". Only the fetcher's
// goroutine touches it.
type followerSession struct {
	id    int32 // 0: none
	epoch int32 // 0: the next request is full (and closes id, if any)
	parts map[partKey]*followerPart
}

// followerPart is one partition of the session: the parameters the leader
// holds for it and its last answer.
type followerPart struct {
	sent         kmsg.FetchRequestTopicPartition
	hw, logStart int64
}

// sessionRequest is what one round sent: whether it was full, and which
// partitions it named or forgot.
type sessionRequest struct {
	full      bool
	named     map[partKey]kmsg.FetchRequestTopicPartition
	forgotten []partKey
}

// sameParams reports whether the leader's session already holds p's
// parameters.
func sameParams(a, b *kmsg.FetchRequestTopicPartition) bool {
	return a.FetchOffset == b.FetchOffset && a.CurrentLeaderEpoch == b.CurrentLeaderEpoch &&
		a.LastFetchedEpoch == b.LastFetchedEpoch && a.LogStartOffset == b.LogStartOffset &&
		a.PartitionMaxBytes == b.PartitionMaxBytes
}

// build fills req's session fields and partitions from want, the round's
// partitions in order: all of them in a full request, else only the
// changed ones, with the rest of the session forgotten.
func (s *followerSession) build(req *kmsg.FetchRequest, want []partKey, params map[partKey]kmsg.FetchRequestTopicPartition) sessionRequest {
	req.SessionID, req.SessionEpoch = s.id, s.epoch
	sr := sessionRequest{full: s.epoch == 0, named: map[partKey]kmsg.FetchRequestTopicPartition{}}
	topics := map[string]int{}
	add := func(k partKey, rp kmsg.FetchRequestTopicPartition) {
		i, ok := topics[k.topic]
		if !ok {
			i = len(req.Topics)
			topics[k.topic] = i
			t := kmsg.NewFetchRequestTopic()
			t.Topic = k.topic
			req.Topics = append(req.Topics, t)
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		sr.named[k] = rp
	}
	for _, k := range want {
		rp := params[k]
		if cur := s.parts[k]; sr.full || cur == nil || !sameParams(&cur.sent, &rp) {
			add(k, rp)
		}
	}
	if sr.full {
		return sr
	}
	forgot := map[string]int{}
	for k := range s.parts {
		if _, ok := params[k]; ok {
			continue
		}
		sr.forgotten = append(sr.forgotten, k)
		i, ok := forgot[k.topic]
		if !ok {
			i = len(req.ForgottenTopics)
			forgot[k.topic] = i
			ft := kmsg.NewFetchRequestForgottenTopic()
			ft.Topic = k.topic
			req.ForgottenTopics = append(req.ForgottenTopics, ft)
		}
		req.ForgottenTopics[i].Partitions = append(req.ForgottenTopics[i].Partitions, k.partition)
	}
	return sr
}

// failed makes the next request full, closing the session: the answer is
// lost, so what the leader's session holds is unknown.
func (s *followerSession) failed() { s.epoch = 0 }

// handle applies a response to the round sr. It reports false for a
// session error, after which the next round is full (the partitions need
// no backoff: a full fetch cannot fail that way).
func (s *followerSession) handle(sr sessionRequest, resp *kmsg.FetchResponse) bool {
	switch resp.ErrorCode {
	case 0:
	case kerr.FetchSessionIDNotFound.Code:
		s.id, s.epoch, s.parts = 0, 0, nil
		return false
	case kerr.InvalidFetchSessionEpoch.Code, kerr.FetchSessionTopicIDError.Code:
		s.epoch = 0
		return false
	default:
		s.epoch = 0
		return true
	}
	if sr.full || s.parts == nil {
		s.parts = make(map[partKey]*followerPart, len(sr.named))
	}
	for k, rp := range sr.named {
		if p := s.parts[k]; p != nil {
			p.sent = rp
		} else {
			s.parts[k] = &followerPart{sent: rp, hw: -1, logStart: -1}
		}
	}
	for _, k := range sr.forgotten {
		delete(s.parts, k)
	}
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		for j := range rt.Partitions {
			sp := &rt.Partitions[j]
			if p := s.parts[partKey{rt.Topic, sp.Partition}]; p != nil {
				p.hw, p.logStart = sp.HighWatermark, sp.LogStartOffset
			}
		}
	}
	switch {
	case resp.SessionID == 0:
		s.id, s.epoch = 0, 0 // none given (or it ended): full requests
	case sr.full:
		s.id, s.epoch = resp.SessionID, nextSessionEpoch(0)
	default:
		s.epoch = nextSessionEpoch(s.epoch)
	}
	return true
}

// unchanged is the answer an incremental response implies for a partition
// of the session it left out: no records, and the HW and log start offset
// last answered.
func (s *followerSession) unchanged(k partKey) (kmsg.FetchResponseTopicPartition, bool) {
	p := s.parts[k]
	if p == nil || p.hw < 0 {
		return kmsg.FetchResponseTopicPartition{}, false
	}
	sp := kmsg.NewFetchResponseTopicPartition()
	sp.Partition, sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = k.partition, p.hw, p.hw, p.logStart
	return sp, true
}
