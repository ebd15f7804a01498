package metadata

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// watchBuffer is the capacity of the channels returned by the Watch
// methods: enough to absorb a burst without making a slow consumer invisible.
const watchBuffer = 16

// kvEvent is one change under a watched prefix. For a delete, value and rev
// are those of the key's last version.
type kvEvent struct {
	typ      EventType
	key      string // with the prefix removed
	value    []byte
	rev      int64
	snapshot bool
}

// watchPrefix reads everything under pfx now (so that an unreachable etcd
// is reported to the caller), then hands it and every later change to emit
// from a tracked goroutine until ctx or the store ends; finish runs last.
// emit returns false to stop. Snapshot and resynchronisation events come in
// the order of order, a comparison of keys without the prefix (nil: byte
// order, as etcd returns them); live events come in commit order.
//
// If the watch breaks (compaction, leader loss, stream error) the loop
// re-reads the prefix and emits the difference from what it had sent, so
// a consumer's view converges on the store's without gaps or replays.
func (e *Etcd) watchPrefix(ctx context.Context, pfx string, order func(a, b string) int,
	emit func(context.Context, kvEvent) bool, finish func(),
) error {
	if err := e.closed(); err != nil {
		return err
	}
	resp, err := e.cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.base, cancel)
	started := e.goTracked(func() {
		defer finish()
		defer stop()
		defer cancel()
		e.followPrefix(wctx, pfx, order, resp, emit)
	})
	if !started {
		stop()
		cancel()
		return ErrClosed
	}
	return nil
}

func (e *Etcd) followPrefix(ctx context.Context, pfx string, order func(a, b string) int,
	resp *clientv3.GetResponse, emit func(context.Context, kvEvent) bool,
) {
	if order == nil {
		order = strings.Compare
	}
	known := map[string]kvEvent{}
	first := true
	for {
		slices.SortFunc(resp.Kvs, func(a, b *mvccpb.KeyValue) int {
			return order(strings.TrimPrefix(string(a.Key), pfx), strings.TrimPrefix(string(b.Key), pfx))
		})
		current := make(map[string]kvEvent, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			k := strings.TrimPrefix(string(kv.Key), pfx)
			ev := kvEvent{typ: EventPut, key: k, value: kv.Value, rev: kv.ModRevision, snapshot: first}
			current[k] = ev
			if old, ok := known[k]; ok && old.rev == ev.rev {
				continue
			}
			if !emit(ctx, ev) {
				return
			}
		}
		for _, k := range slices.SortedFunc(maps.Keys(known), order) {
			if _, ok := current[k]; !ok {
				old := known[k]
				old.typ, old.snapshot = EventDelete, false
				if !emit(ctx, old) {
					return
				}
			}
		}
		known, first = current, false
		if h := e.testHooks.beforeWatch; h != nil {
			h()
		}
		if !e.followChanges(ctx, pfx, resp.Header.Revision+1, known, emit) {
			return
		}
		if resp = e.getRetry(ctx, pfx); resp == nil {
			return
		}
	}
}

// followChanges applies watch events from rev on to known and emits them.
// It returns false when ctx ended or emit asked to stop, true when the
// watch broke and the caller should resynchronise.
func (e *Etcd) followChanges(ctx context.Context, pfx string, rev int64, known map[string]kvEvent, emit func(context.Context, kvEvent) bool) bool {
	wch := e.cli.Watch(clientv3.WithRequireLeader(ctx), pfx,
		clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithPrevKV())
	for wr := range wch {
		if err := wr.Err(); err != nil {
			e.log.Warn("metadata watch broken, resynchronising", "prefix", pfx, "err", err)
			return ctx.Err() == nil
		}
		for _, ev := range wr.Events {
			k := strings.TrimPrefix(string(ev.Kv.Key), pfx)
			var out kvEvent
			switch ev.Type {
			case mvccpb.PUT:
				out = kvEvent{typ: EventPut, key: k, value: ev.Kv.Value, rev: ev.Kv.ModRevision}
				known[k] = out
			case mvccpb.DELETE:
				old, ok := known[k]
				if ev.PrevKv != nil {
					old, ok = kvEvent{key: k, value: ev.PrevKv.Value, rev: ev.PrevKv.ModRevision}, true
				}
				delete(known, k)
				if !ok {
					continue
				}
				out = old
				out.typ = EventDelete
			}
			if !emit(ctx, out) {
				return false
			}
		}
	}
	return ctx.Err() == nil
}

// getRetry reads the prefix, retrying with backoff until it succeeds or ctx
// ends (nil).
func (e *Etcd) getRetry(ctx context.Context, pfx string) *clientv3.GetResponse {
	backoff := 100 * time.Millisecond
	for {
		resp, err := e.cli.Get(ctx, pfx, clientv3.WithPrefix())
		if err == nil {
			return resp
		}
		e.log.Warn("metadata watch resync failed", "prefix", pfx, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// WatchTopics implements Store.
func (e *Etcd) WatchTopics(ctx context.Context) (<-chan TopicEvent, error) {
	ch := make(chan TopicEvent, watchBuffer)
	emit := func(ctx context.Context, ev kvEvent) bool {
		t, err := decodeTopic(ev.key, ev.value, ev.rev)
		if err != nil {
			e.log.Warn("skipping undecodable topic record", "topic", ev.key, "err", err)
			return true
		}
		select {
		case ch <- TopicEvent{Type: ev.typ, Topic: t, Snapshot: ev.snapshot}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if err := e.watchPrefix(ctx, e.topicKey(""), nil, emit, func() { close(ch) }); err != nil {
		return nil, wrapWatchErr("topics", err)
	}
	return ch, nil
}

// WatchBrokers implements Store.
func (e *Etcd) WatchBrokers(ctx context.Context) (<-chan BrokerEvent, error) {
	ch := make(chan BrokerEvent, watchBuffer)
	emit := func(ctx context.Context, ev kvEvent) bool {
		b, err := decodeBroker(ev.value, ev.rev)
		if err != nil {
			e.log.Warn("skipping undecodable broker record", "broker", ev.key, "err", err)
			return true
		}
		select {
		case ch <- BrokerEvent{Type: ev.typ, Broker: b, Snapshot: ev.snapshot}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if err := e.watchPrefix(ctx, e.key("brokers")+"/", nil, emit, func() { close(ch) }); err != nil {
		return nil, wrapWatchErr("brokers", err)
	}
	return ch, nil
}

func wrapWatchErr(what string, err error) error {
	if errors.Is(err, ErrClosed) {
		return err
	}
	return fmt.Errorf("metadata: watch %s: %w", what, err)
}
