package metadata

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// releaseTimeout bounds the revoke/resign RPC made by Close, so that closing
// against a dead etcd does not hang; the lease then simply expires.
const releaseTimeout = 2 * time.Second

func ttlSeconds(ttl time.Duration) int64 {
	if ttl <= 0 {
		ttl = DefaultBrokerTTL
	}
	return max(1, int64(math.Ceil(ttl.Seconds())))
}

func (e *Etcd) brokerKey(id int32) string {
	return e.key("brokers", strconv.FormatInt(int64(id), 10))
}

// RegisterBroker implements Store. The record is put with a fresh lease in a
// create-if-absent transaction, so a node id held by a live lease is refused
// rather than overwritten.
func (e *Etcd) RegisterBroker(ctx context.Context, b Broker, ttl time.Duration) (*Registration, error) {
	if err := e.closed(); err != nil {
		return nil, err
	}
	if b.NodeID < 0 {
		return nil, fmt.Errorf("metadata: register broker with negative node id %d", b.NodeID)
	}
	val, err := encodeBroker(b)
	if err != nil {
		return nil, err
	}
	sent := time.Now() // the server's TTL runs from no earlier than this
	grant, err := e.cli.Grant(ctx, ttlSeconds(ttl))
	if err != nil {
		return nil, fmt.Errorf("metadata: register broker %d: grant lease: %w", b.NodeID, err)
	}
	k := e.brokerKey(b.NodeID)
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(val), clientv3.WithLease(grant.ID))).
		Commit()
	if err == nil && !resp.Succeeded {
		resp, err = e.takeOverBroker(ctx, k, b, string(val), grant.ID)
	}
	if err != nil || !resp.Succeeded {
		_ = e.revoke(grant.ID)
		if err != nil {
			return nil, fmt.Errorf("metadata: register broker %d: %w", b.NodeID, err)
		}
		return nil, fmt.Errorf("register broker %d: %w", b.NodeID, ErrBrokerIDInUse)
	}
	l, err := e.keepAlive(grant.ID, sent, grant.TTL)
	if err != nil {
		return nil, fmt.Errorf("metadata: register broker %d: %w", b.NodeID, err)
	}
	// The transaction wrote only the broker key, so its revision is the
	// key's mod revision: the Epoch that Brokers and WatchBrokers report.
	b.Epoch = resp.Header.Revision
	return &Registration{broker: b, epoch: b.Epoch, l: l}, nil
}

// takeOverBroker replaces a registration left by an earlier process of the
// same broker (same non-empty Incarnation), revoking its lease. It returns
// an unsucceeded response when the record belongs to someone else or changed
// meanwhile.
func (e *Etcd) takeOverBroker(ctx context.Context, k string, b Broker, val string, lease clientv3.LeaseID) (*clientv3.TxnResponse, error) {
	get, err := e.cli.Get(ctx, k)
	if err != nil {
		return nil, err
	}
	if len(get.Kvs) == 0 || b.Incarnation == "" {
		return &clientv3.TxnResponse{}, nil
	}
	kv := get.Kvs[0]
	old, err := decodeBroker(kv.Value, kv.ModRevision)
	if err != nil || old.Incarnation != b.Incarnation {
		return &clientv3.TxnResponse{}, nil
	}
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)).
		Then(clientv3.OpPut(k, val, clientv3.WithLease(lease))).
		Commit()
	if err == nil && resp.Succeeded && kv.Lease != 0 {
		_ = e.revoke(clientv3.LeaseID(kv.Lease))
	}
	return resp, err
}

// AllocateProducerIDs implements Store with a compare-and-swap loop on one
// counter key.
func (e *Etcd) AllocateProducerIDs(ctx context.Context, n int64) (int64, error) {
	if err := e.closed(); err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("metadata: allocate %d producer ids", n)
	}
	k := e.key("producer_ids", "next")
	for {
		get, err := e.cli.Get(ctx, k)
		if err != nil {
			return 0, fmt.Errorf("metadata: allocate producer ids: %w", err)
		}
		var next int64
		var rev int64
		if len(get.Kvs) > 0 {
			rev = get.Kvs[0].ModRevision
			if next, err = strconv.ParseInt(string(get.Kvs[0].Value), 10, 64); err != nil {
				return 0, fmt.Errorf("metadata: producer id counter %q: %w", get.Kvs[0].Value, err)
			}
		}
		resp, err := e.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
			Then(clientv3.OpPut(k, strconv.FormatInt(next+n, 10))).
			Commit()
		if err != nil {
			return 0, fmt.Errorf("metadata: allocate producer ids: %w", err)
		}
		if resp.Succeeded {
			return next, nil
		}
	}
}

// revoke gives a lease back, ignoring "already gone".
func (e *Etcd) revoke(id clientv3.LeaseID) error {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	_, err := e.cli.Revoke(ctx, id)
	if err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return fmt.Errorf("metadata: revoke lease %x: %w", int64(id), err)
}

// Brokers implements Store.
func (e *Etcd) Brokers(ctx context.Context) ([]Broker, error) {
	if err := e.closed(); err != nil {
		return nil, err
	}
	resp, err := e.cli.Get(ctx, e.key("brokers")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metadata: list brokers: %w", err)
	}
	out := make([]Broker, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		b, err := decodeBroker(kv.Value, kv.ModRevision)
		if err != nil {
			e.log.Warn("skipping undecodable broker record", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out, nil
}

// Campaign implements Store with an etcd election (the algorithm of etcd's
// concurrency package, see elect) under "<prefix>/controller", on a
// session lease of EtcdConfig.SessionTTL.
func (e *Etcd) Campaign(ctx context.Context, nodeID int32) (*Leadership, error) {
	if err := e.closed(); err != nil {
		return nil, err
	}
	// The grant is bounded by ctx (an unreachable etcd must not hold the
	// caller past it); the session's keepalive then lives until Close.
	grant, err := e.cli.Grant(ctx, ttlSeconds(e.sessionTTL))
	if err != nil {
		return nil, fmt.Errorf("metadata: controller session: %w", err)
	}
	sess, err := concurrency.NewSession(e.cli, concurrency.WithLease(grant.ID), concurrency.WithContext(e.base))
	if err != nil {
		_ = e.revoke(grant.ID)
		return nil, fmt.Errorf("metadata: controller session: %w", err)
	}
	if err := e.withdrawStaleCandidacies(ctx, nodeID, sess.Lease()); err != nil {
		sess.Orphan()
		_ = e.revoke(sess.Lease())
		return nil, fmt.Errorf("metadata: campaign for controller: %w", err)
	}
	// Close must not wait for a candidate blocked behind another controller.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.base, cancel)()
	rev, err := e.elect(cctx, e.key("controller"), sess.Lease(), strconv.FormatInt(int64(nodeID), 10))
	if err != nil {
		// Revoking the session's lease deletes the candidacy key with it.
		sess.Orphan()
		_ = e.revoke(sess.Lease())
		if e.base.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("metadata: campaign for controller: %w", err)
	}
	l := newLease()
	done := make(chan struct{})
	stop := make(chan struct{})
	l.release = func() error {
		close(stop)
		<-done
		e.untrackLease(l)
		sess.Orphan()
		if errors.Is(l.err(), ErrLeaseLost) {
			return nil // the lease and with it the election key are gone
		}
		// One bounded revoke deletes the election key with the lease and
		// lets the next candidate win at once; against an unreachable etcd
		// it gives up after releaseTimeout and the lease simply expires.
		return e.revoke(sess.Lease())
	}
	l.expire = func() error { return e.revoke(sess.Lease()) }
	started := e.goTracked(func() {
		defer close(done)
		select {
		case <-sess.Done():
			l.end(ErrLeaseLost)
		case <-stop:
		}
	})
	if !started || !e.trackLease(l) {
		if !started {
			close(done)
		}
		_ = l.close()
		return nil, ErrClosed
	}
	return &Leadership{nodeID: nodeID, epoch: rev, l: l}, nil
}

// elect enters the election under pfx with a key bound to lease and value
// val, waits until no older candidacy is left, and returns the key's create
// revision (the controller epoch). It is the election of etcd's concurrency
// package with one difference that matters at shutdown: it never cleans up
// with the client's own context, which retries forever while etcd is
// unreachable (concurrency.Election.Campaign resigns with client.Ctx() when
// ctx ends, and a broker's Close waited on that for good). Every call here
// is bounded by ctx; on failure the caller revokes the lease, which deletes
// the key.
func (e *Etcd) elect(ctx context.Context, pfx string, lease clientv3.LeaseID, val string) (int64, error) {
	k := fmt.Sprintf("%s/%x", pfx, int64(lease))
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, val, clientv3.WithLease(lease))).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return 0, err
	}
	rev := resp.Header.Revision
	if !resp.Succeeded { // our own key, from an earlier attempt on this lease
		kv := resp.Responses[0].GetResponseRange().Kvs[0]
		rev = kv.CreateRevision
		if string(kv.Value) != val {
			if _, err := e.cli.Put(ctx, k, val, clientv3.WithLease(lease)); err != nil {
				return 0, err
			}
		}
	}
	for {
		older, err := e.cli.Get(ctx, pfx+"/", append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(rev-1))...)
		if err != nil {
			return 0, err
		}
		if len(older.Kvs) == 0 {
			return rev, nil
		}
		if err := e.waitDeleted(ctx, string(older.Kvs[0].Key), older.Header.Revision); err != nil {
			return 0, err
		}
	}
}

// waitDeleted waits until key is deleted at or after revision rev.
func (e *Etcd) waitDeleted(ctx context.Context, key string, rev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wr clientv3.WatchResponse
	for wr = range e.cli.Watch(wctx, key, clientv3.WithRev(rev)) {
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				return nil
			}
		}
	}
	if err := wr.Err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("metadata: watch ended while waiting for an older candidacy to go")
}

// Controller implements Store: the candidate with the oldest key under
// "<prefix>/controller/" holds the election.
func (e *Etcd) Controller(ctx context.Context) (int32, int64, error) {
	if err := e.closed(); err != nil {
		return -1, 0, err
	}
	resp, err := e.cli.Get(ctx, e.key("controller")+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return -1, 0, fmt.Errorf("metadata: controller: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return -1, 0, ErrNoController
	}
	kv := resp.Kvs[0]
	id, err := strconv.ParseInt(string(kv.Value), 10, 32)
	if err != nil {
		return -1, 0, fmt.Errorf("metadata: controller record %q: %w", kv.Value, err)
	}
	return int32(id), kv.CreateRevision, nil
}

// withdrawStaleCandidacies revokes the leases of controller candidacies
// that carry nodeID but not this session's lease. Campaign is only called by
// the process holding nodeID's broker registration, and one node id is
// registered once at a time, so such a candidacy was left by an earlier
// process of this node (killed before it could resign): without this, a
// restarted controller would wait up to a session TTL for its own ghost.
// WithdrawCandidacies implements Store by revoking the leases of nodeID's
// candidacies.
func (e *Etcd) WithdrawCandidacies(ctx context.Context, nodeID int32) error {
	if err := e.closed(); err != nil {
		return err
	}
	return e.withdrawStaleCandidacies(ctx, nodeID, 0)
}

func (e *Etcd) withdrawStaleCandidacies(ctx context.Context, nodeID int32, own clientv3.LeaseID) error {
	resp, err := e.cli.Get(ctx, e.key("controller")+"/", clientv3.WithPrefix())
	if err != nil {
		return err
	}
	id := strconv.FormatInt(int64(nodeID), 10)
	for _, kv := range resp.Kvs {
		if string(kv.Value) == id && kv.Lease != 0 && clientv3.LeaseID(kv.Lease) != own {
			e.log.Info("withdrawing a stale controller candidacy", "candidate", nodeID, "key", string(kv.Key))
			if err := e.revoke(clientv3.LeaseID(kv.Lease)); err != nil {
				return err
			}
		}
	}
	return nil
}
