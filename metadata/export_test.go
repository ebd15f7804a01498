package metadata

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ExpireRegistrationForTest makes the lease behind r expire as the server
// would (etcd: revoked behind the keepalive's back).
func ExpireRegistrationForTest(r *Registration) error { return r.l.expire() }

// ExpireLeadershipForTest does the same for a controller leadership.
func ExpireLeadershipForTest(l *Leadership) error { return l.l.expire() }

// KeysForTest lists every key under the store's prefix, without it.
func KeysForTest(ctx context.Context, e *Etcd) ([]string, error) {
	resp, err := e.cli.Get(ctx, e.prefix+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, strings.TrimPrefix(string(kv.Key), e.prefix))
	}
	return keys, nil
}

// RawGetForTest returns the stored value of one key under the prefix.
func RawGetForTest(ctx context.Context, e *Etcd, key string) (string, error) {
	resp, err := e.cli.Get(ctx, e.prefix+key)
	if err != nil || len(resp.Kvs) == 0 {
		return "", err
	}
	return string(resp.Kvs[0].Value), nil
}

// CompactForTest compacts the etcd history up to the current revision, so
// watches that resume from an older revision get ErrCompacted.
func CompactForTest(ctx context.Context, e *Etcd) error {
	resp, err := e.cli.Get(ctx, "/")
	if err != nil {
		return err
	}
	_, err = e.cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
	return err
}

// SetBeforeWatchForTest installs f to run once, in the watch goroutine,
// between a watch's snapshot read and the start of its event stream.
func SetBeforeWatchForTest(e *Etcd, f func()) {
	var once sync.Once
	e.testHooks.beforeWatch = func() { once.Do(f) }
}

// PutGhostCandidacyForTest leaves a controller candidacy for nodeID on a
// lease of ttl that nobody keeps alive or resigns, as a process killed
// while campaigning would.
func PutGhostCandidacyForTest(ctx context.Context, e *Etcd, nodeID int32, ttl int64) error {
	grant, err := e.cli.Grant(ctx, ttl)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%s/%x", e.key("controller"), int64(grant.ID))
	_, err = e.cli.Put(ctx, key, strconv.FormatInt(int64(nodeID), 10), clientv3.WithLease(grant.ID))
	return err
}
