package broker

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// peerTopicPoll is how often awaitPeersSeeTopic asks a broker again whose
// Metadata does not list a new topic complete yet. etcd's watch brings it
// within milliseconds, so a handful of polls is the usual cost.
const peerTopicPoll = 20 * time.Millisecond

// awaitPeersSeeTopic waits, until ctx ends, for every other live broker's
// Metadata to list topic with all its partitions and a leader for each, so
// that a client's next Metadata request finds the topic complete whichever
// broker it asks, as the issue and Kafka's clients expect once
// CreateTopics has answered. Each broker is asked in parallel over a
// connection of its own; a broker that cannot be reached is not waited for
// (it serves no clients either). It reports whether every broker asked
// listed the topic complete in time.
func (b *Broker) awaitPeersSeeTopic(ctx context.Context, topic string, partitions int32) bool {
	var wg sync.WaitGroup
	var mu sync.Mutex
	all := true
	for _, br := range b.liveBrokers() {
		if br.NodeID == b.cfg.NodeID {
			continue
		}
		addr := net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port)))
		wg.Go(func() {
			if !b.awaitPeerSeesTopic(ctx, br.NodeID, addr, topic, partitions) {
				mu.Lock()
				all = false
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return all
}

// awaitPeerSeesTopic polls one broker's Metadata for topic; see
// awaitPeersSeeTopic.
func (b *Broker) awaitPeerSeesTopic(ctx context.Context, node int32, addr, topic string, partitions int32) bool {
	pc := newPeerConn(b.cfg.NodeID, node)
	defer pc.close()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	req.AllowAutoTopicCreation = false // never recreate it if it is deleted meanwhile
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(5 * time.Second)
		}
		resp, err := pc.roundTrip(ctx, addr, req, deadline)
		if err != nil {
			if ctx.Err() == nil {
				b.log.Debug("not waiting for a broker to see a new topic: unreachable", "broker", node, "topic", topic, "err", err)
			}
			return ctx.Err() == nil
		}
		if topicComplete(resp.(*kmsg.MetadataResponse), topic, partitions) {
			return true
		}
		t.Reset(peerTopicPoll)
	}
}

// topicComplete reports whether a Metadata response lists topic without
// error, with partitions partitions, each with a leader.
func topicComplete(resp *kmsg.MetadataResponse, topic string, partitions int32) bool {
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if t.ErrorCode != 0 || int32(len(t.Partitions)) != partitions {
			return false
		}
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 || p.Leader < 0 {
				return false
			}
		}
		return true
	}
	return false
}
