package metadata_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicedev/sluice/metadata"
	"github.com/sluicedev/sluice/metadata/etcdtest"
)

func TestMemoryConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) metadata.Store {
		s := metadata.NewMemory()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// etcdStores returns a factory of isolated stores on one etcd: each store
// gets its own key prefix.
func etcdStores(endpoints []string) newStoreFunc {
	return func(t *testing.T) metadata.Store {
		s, err := metadata.NewEtcd(ctxT(t), metadata.EtcdConfig{
			Endpoints:   endpoints,
			Prefix:      "/conformance/" + t.Name(),
			DialTimeout: 5 * time.Second,
			SessionTTL:  2 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
}

func TestEtcdConformanceEmbedded(t *testing.T) {
	runConformance(t, etcdStores(etcdtest.StartEmbedded(t)))
}

func TestEtcdConformanceExternal(t *testing.T) {
	x := etcdtest.StartExternalServer(t)
	t.Logf("external etcd: %s (%s) at %v", x.Bin, x.Version, x.Endpoints())
	runConformance(t, etcdStores(x.Endpoints()))
}

// TestEtcdCreatePartitionStatesBatched: the first records of 300
// partitions take three transactions (etcd's 128-operation limit), not
// 300: the records share three revisions.
func TestEtcdCreatePartitionStatesBatched(t *testing.T) {
	s := etcdStores(etcdtest.StartEmbedded(t))(t)
	ctx := ctxT(t)
	mustCreate(t, s, metadata.Topic{Name: "batched", Partitions: 300})
	states := make([]metadata.PartitionState, 300)
	for p := range states {
		states[p] = metadata.PartitionState{Topic: "batched", Partition: int32(p), Leader: 1, ISR: []int32{1}}
	}
	written, err := s.CreatePartitionStates(ctx, states)
	if err != nil {
		t.Fatal(err)
	}
	revs := map[int64]bool{}
	for _, w := range written {
		revs[w.Revision] = true
	}
	if len(written) != 300 || len(revs) != 3 {
		t.Fatalf("wrote %d records in %d revisions, want 300 in 3", len(written), len(revs))
	}
}

func TestMemoryExpireHooks(t *testing.T) {
	m := metadata.NewMemory()
	defer m.Close()
	ctx := ctxT(t)
	r, err := m.RegisterBroker(ctx, metadata.Broker{NodeID: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.ExpireBroker(5) {
		t.Fatal("ExpireBroker of an unknown broker reported success")
	}
	if !m.ExpireBroker(4) || !errors.Is(r.Err(), metadata.ErrLeaseLost) {
		t.Fatalf("after ExpireBroker: err %v", r.Err())
	}
	if bs, _ := m.Brokers(ctx); len(bs) != 0 {
		t.Fatalf("broker still listed: %v", bs)
	}
	l, err := m.Campaign(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !m.ExpireController() || !errors.Is(l.Err(), metadata.ErrLeaseLost) {
		t.Fatalf("after ExpireController: err %v", l.Err())
	}
	if m.ExpireController() {
		t.Fatal("ExpireController with no controller reported success")
	}
}

func TestEmbeddedRestartKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	open := func() (*metadata.Embedded, *metadata.Etcd) {
		start := time.Now()
		e := etcdtest.StartEmbeddedDir(t, dir)
		t.Logf("embedded etcd ready in %v", time.Since(start))
		s, err := metadata.NewEtcd(ctxT(t), metadata.EtcdConfig{Endpoints: e.Endpoints()})
		if err != nil {
			t.Fatal(err)
		}
		return e, s
	}
	e, s := open()
	id1, err := s.ClusterID(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	created := mustCreate(t, s, sampleTopic("kept"))
	_ = s.Close()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	e2, s2 := open()
	defer e2.Close()
	defer s2.Close()
	id2, err := s2.ClusterID(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 {
		t.Fatalf("cluster id %q became %q after restart", id1, id2)
	}
	got, err := s2.Topic(ctxT(t), "kept")
	if err != nil || got.ID != created.ID || got.Revision != created.Revision {
		t.Fatalf("after restart Topic = %+v, %v; want %+v", got, err, created)
	}
}

func TestEmbeddedPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = metadata.StartEmbedded(ctx, metadata.EmbeddedConfig{
		Dir: t.TempDir(), ClientAddr: l.Addr().String(), PeerAddr: "127.0.0.1:0",
	})
	if err == nil {
		t.Fatal("StartEmbedded on a taken port succeeded")
	}
	if !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("error does not explain the clash: %v", err)
	}
}

func TestEtcdUnreachableFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	start := time.Now()
	_, err = metadata.NewEtcd(context.Background(), metadata.EtcdConfig{
		Endpoints: []string{addr}, DialTimeout: 500 * time.Millisecond,
	})
	if err == nil {
		t.Fatal("NewEtcd against a dead endpoint succeeded")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("NewEtcd took %v with a 500ms dial timeout", took)
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("error does not name the endpoint: %v", err)
	}
}

// TestEtcdKeyLayout pins the key layout documented in doc.go.
func TestEtcdKeyLayout(t *testing.T) {
	ep := etcdtest.StartEmbedded(t)
	s, err := metadata.NewEtcd(ctxT(t), metadata.EtcdConfig{Endpoints: ep, Prefix: "/layout/"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := ctxT(t)
	if _, err := s.ClusterID(ctx); err != nil {
		t.Fatal(err)
	}
	tp := mustCreate(t, s, metadata.Topic{Name: "t1", Partitions: 1, ReplicationFactor: 1, Replicas: [][]int32{{3}}})
	if _, err := s.SetPartitionState(ctx, metadata.PartitionState{Topic: "t1", Partition: 0, Leader: 3, ISR: []int32{3}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBrokerConfigs(ctx, 3, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	r, err := s.RegisterBroker(ctx, metadata.Broker{NodeID: 3, Host: "h", Port: 9092}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l, err := s.Campaign(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	keys, err := metadata.KeysForTest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	var ctrl string
	keys = slices.DeleteFunc(keys, func(k string) bool {
		if strings.HasPrefix(k, "/controller/") {
			ctrl = k
			return true
		}
		return false
	})
	want := []string{"/brokers/3", "/cluster/id", "/configs/brokers/3", "/partitions/t1/0", "/topics/t1"}
	if !slices.Equal(keys, want) || ctrl == "" {
		t.Fatalf("keys = %v + %q, want %v + /controller/<lease>", keys, ctrl, want)
	}
	raw, _ := metadata.RawGetForTest(ctx, s, "/topics/t1")
	wantRaw := `{"id":"` + metadata.FormatUUID(tp.ID) + `","partitions":1,"replication_factor":1,"replicas":[[3]]}`
	if raw != wantRaw {
		t.Fatalf("topic record %s, want %s", raw, wantRaw)
	}
	raw, _ = metadata.RawGetForTest(ctx, s, "/partitions/t1/0")
	if want := `{"leader":3,"leader_epoch":0,"isr":[3],"partition_epoch":0}`; raw != want {
		t.Fatalf("partition record %s, want %s", raw, want)
	}
	raw, _ = metadata.RawGetForTest(ctx, s, "/brokers/3")
	if want := `{"node_id":3,"host":"h","port":9092}`; raw != want {
		t.Fatalf("broker record %s, want %s", raw, want)
	}
}

// TestEtcdWatchPrefixIsolation checks that a prefix never sees the keys of
// another prefix that it is a string prefix of.
func TestEtcdWatchPrefixIsolation(t *testing.T) {
	ep := etcdtest.StartEmbedded(t)
	ctx := ctxT(t)
	a, err := metadata.NewEtcd(ctx, metadata.EtcdConfig{Endpoints: ep, Prefix: "/a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ab, err := metadata.NewEtcd(ctx, metadata.EtcdConfig{Endpoints: ep, Prefix: "/ab"})
	if err != nil {
		t.Fatal(err)
	}
	defer ab.Close()
	ch, err := a.WatchTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, ab, metadata.Topic{Name: "other", Partitions: 1})
	mine := mustCreate(t, a, metadata.Topic{Name: "mine", Partitions: 1})
	if ev := recvTopic(t, ch); ev.Topic.Name != "mine" || ev.Topic.ID != mine.ID {
		t.Fatalf("watch on /a saw %+v", ev)
	}
	if ts, _ := a.Topics(ctx); len(ts) != 1 {
		t.Fatalf("/a lists %d topics", len(ts))
	}
}

// TestEtcdWatchResyncAfterCompaction compacts the history between the
// watch's snapshot and the start of its event stream, so the stream fails
// with ErrCompacted, and checks that the consumer still sees the changes it
// missed, as a diff, and then live changes.
func TestEtcdWatchResyncAfterCompaction(t *testing.T) {
	ep := etcdtest.StartEmbedded(t)
	ctx := ctxT(t)
	s, err := metadata.NewEtcd(ctx, metadata.EtcdConfig{Endpoints: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	early := mustCreate(t, s, metadata.Topic{Name: "early", Partitions: 1})
	var late metadata.Topic
	var hookErr error
	metadata.SetBeforeWatchForTest(s, func() {
		if late, hookErr = s.CreateTopic(ctx, metadata.Topic{Name: "late", Partitions: 1}); hookErr != nil {
			return
		}
		if hookErr = s.DeleteTopic(ctx, "early"); hookErr != nil {
			return
		}
		hookErr = metadata.CompactForTest(ctx, s)
	})
	ch, err := s.WatchTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev := recvTopic(t, ch); ev.Type != metadata.EventPut || !ev.Snapshot || ev.Topic.ID != early.ID {
		t.Fatalf("snapshot event %+v", ev)
	}
	ev1, ev2 := recvTopic(t, ch), recvTopic(t, ch)
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if ev1.Type != metadata.EventPut || ev1.Snapshot || ev1.Topic.ID != late.ID {
		t.Fatalf("first resync event %+v, want put of late", ev1)
	}
	if ev2.Type != metadata.EventDelete || ev2.Topic.ID != early.ID {
		t.Fatalf("second resync event %+v, want delete of early", ev2)
	}
	live := mustCreate(t, s, metadata.Topic{Name: "live", Partitions: 1})
	if ev := recvTopic(t, ch); ev.Type != metadata.EventPut || ev.Topic.ID != live.ID {
		t.Fatalf("live event %+v", ev)
	}
}

func TestEmbeddedDirInUse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	etcdtest.StartEmbeddedDir(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := metadata.StartEmbedded(ctx, metadata.EmbeddedConfig{Dir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0"})
	if err == nil {
		_ = e.Close()
		t.Fatal("second server on the same data dir started")
	}
	if !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error does not explain the clash: %v", err)
	}
}

// TestEtcdRegistrationOutlivesTTL checks that the keepalive renews the
// lease: a registration stays for several TTLs.
func TestEtcdRegistrationOutlivesTTL(t *testing.T) {
	s := etcdStores(etcdtest.StartEmbedded(t))(t)
	r, err := s.RegisterBroker(ctxT(t), metadata.Broker{NodeID: 1, Host: "h", Port: 1}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	select {
	case <-r.Lost():
		t.Fatalf("registration lost: %v", r.Err())
	case <-time.After(3 * time.Second):
	}
	if got := brokerIDs(t, s); !slices.Equal(got, []int32{1}) {
		t.Fatalf("Brokers() = %v after 3 TTLs", got)
	}
}

// TestEtcdRegistrationValidUntilAdvances checks that ValidUntil starts at
// most one TTL ahead and that each successful renewal moves it forward.
func TestEtcdRegistrationValidUntilAdvances(t *testing.T) {
	const ttl = 2 * time.Second // at least etcd's minimum TTL, so granted as asked
	s := etcdStores(etcdtest.StartEmbedded(t))(t)
	before := time.Now()
	r, err := s.RegisterBroker(ctxT(t), metadata.Broker{NodeID: 1, Host: "h", Port: 1}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	first := r.ValidUntil()
	if after := time.Now(); !first.After(after) || first.After(after.Add(ttl)) || first.Before(before.Add(ttl)) {
		t.Fatalf("ValidUntil %v, want in [%v, %v] (registered between %v and %v + TTL)",
			first, before.Add(ttl), after.Add(ttl), before, after)
	}
	// Renewals run every TTL/3; within about 1.5s at least two succeed.
	waitFor(t, 3*time.Second, func() error {
		if v := r.ValidUntil(); !v.After(first.Add(ttl / 2)) {
			return fmt.Errorf("ValidUntil %v, registered with %v", v, first)
		}
		return nil
	})
	if now, v := time.Now(), r.ValidUntil(); v.After(now.Add(ttl)) {
		t.Fatalf("ValidUntil %v is more than one TTL after now (%v)", v, now)
	}
	if isClosed(r.Lost()) {
		t.Fatalf("registration lost: %v", r.Err())
	}
}

// TestEtcdRegistrationLostAtDeadline stops etcd under a live registration
// and checks that the registration ends as lost once ValidUntil has passed,
// and no earlier: until then the server could still hold the lease.
func TestEtcdRegistrationLostAtDeadline(t *testing.T) {
	e := etcdtest.StartEmbeddedDir(t, filepath.Join(t.TempDir(), "etcd"))
	s := etcdStores(e.Endpoints())(t)
	r, err := s.RegisterBroker(ctxT(t), metadata.Broker{NodeID: 1, Host: "h", Port: 1}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	select {
	case <-r.Lost():
	case <-time.After(10 * time.Second):
		t.Fatalf("registration still live 10s after etcd stopped; ValidUntil %v", r.ValidUntil())
	}
	lostAt, deadline := time.Now(), r.ValidUntil()
	if !errors.Is(r.Err(), metadata.ErrLeaseLost) {
		t.Fatalf("Err() = %v, want ErrLeaseLost", r.Err())
	}
	if lostAt.Before(deadline) {
		t.Fatalf("lost at %v, before ValidUntil %v", lostAt, deadline)
	}
	if late := lostAt.Sub(deadline); late > time.Second {
		t.Fatalf("lost %v after ValidUntil (etcd stopped %v before it)", late, deadline.Sub(stopped))
	}
	if d := deadline.Sub(stopped); d > 2*time.Second {
		t.Fatalf("ValidUntil %v after etcd stopped, more than one TTL", d)
	}
}

// TestEtcdPartitionWatchResync breaks a partition watch as
// TestEtcdWatchResyncAfterCompaction does and checks that the resync turns
// the missed changes into a put with the new revision and deletes that
// carry the last values.
func TestEtcdPartitionWatchResync(t *testing.T) {
	ep := etcdtest.StartEmbedded(t)
	ctx := ctxT(t)
	s, err := metadata.NewEtcd(ctx, metadata.EtcdConfig{Endpoints: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCreate(t, s, metadata.Topic{Name: "keep", Partitions: 1})
	mustCreate(t, s, metadata.Topic{Name: "gone", Partitions: 1})
	keep := setPartition(t, s, metadata.PartitionState{Topic: "keep", Partition: 0, Leader: 1, ISR: []int32{1}})
	gone := setPartition(t, s, metadata.PartitionState{Topic: "gone", Partition: 0, Leader: 2, ISR: []int32{2}})
	var keep2 metadata.PartitionState
	var hookErr error
	metadata.SetBeforeWatchForTest(s, func() {
		next := keep
		next.Leader, next.LeaderEpoch = 3, 1
		if keep2, hookErr = s.SetPartitionState(ctx, next); hookErr != nil {
			return
		}
		if hookErr = s.DeleteTopic(ctx, "gone"); hookErr != nil {
			return
		}
		hookErr = metadata.CompactForTest(ctx, s)
	})
	ch, err := s.WatchPartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []metadata.PartitionState{gone, keep} {
		if ev := recvPartition(t, ch); ev.Type != metadata.EventPut || !ev.Snapshot || !reflect.DeepEqual(ev.State, want) {
			t.Fatalf("snapshot event %+v, want put of %+v", ev, want)
		}
	}
	ev1, ev2 := recvPartition(t, ch), recvPartition(t, ch)
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if want := (metadata.PartitionEvent{Type: metadata.EventPut, State: keep2}); !reflect.DeepEqual(ev1, want) {
		t.Fatalf("first resync event %+v, want %+v", ev1, want)
	}
	if want := (metadata.PartitionEvent{Type: metadata.EventDelete, State: gone}); !reflect.DeepEqual(ev2, want) {
		t.Fatalf("second resync event %+v, want %+v", ev2, want)
	}
}

// TestEtcdCampaignWithdrawsOwnGhost: a restarted controller whose previous
// process was killed mid-term (its candidacy still on an unexpired lease)
// wins the election at once instead of waiting for that lease, while a
// candidacy of another node still blocks it.
func TestEtcdCampaignWithdrawsOwnGhost(t *testing.T) {
	s := etcdStores(etcdtest.StartEmbedded(t))(t)
	e := s.(*metadata.Etcd)
	if err := metadata.PutGhostCandidacyForTest(ctxT(t), e, 1, 60); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lead, err := s.Campaign(ctx, 1)
	if err != nil {
		t.Fatalf("campaign behind its own ghost: %v", err)
	}
	defer lead.Close()
	if id, _, err := s.Controller(ctx); err != nil || id != 1 {
		t.Fatalf("controller %d, %v; want 1", id, err)
	}
	if err := lead.Close(); err != nil {
		t.Fatal(err)
	}
	if err := metadata.PutGhostCandidacyForTest(ctxT(t), e, 2, 60); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShort()
	if l, err := s.Campaign(short, 1); err == nil {
		l.Close()
		t.Fatal("node 1 won while node 2's live candidacy came first")
	}
}

// TestEtcdCampaignEndsWithoutEtcd stops etcd under a candidate waiting
// behind the elected controller: cancelling the candidate's context must
// end Campaign promptly, and Close must not wait on etcd either (etcd's own
// election cleans up with the client's context, which retries forever).
func TestEtcdCampaignEndsWithoutEtcd(t *testing.T) {
	e := etcdtest.StartEmbeddedDir(t, filepath.Join(t.TempDir(), "etcd"))
	stores := etcdStores(e.Endpoints())
	a, b := stores(t), stores(t)
	lead, err := a.Campaign(ctxT(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer lead.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := make(chan error, 1)
	go func() {
		l, err := b.Campaign(ctx, 2)
		if err == nil {
			_ = l.Close()
		}
		ended <- err
	}()
	// Campaign is waiting once its candidacy key is stored.
	waitFor(t, 5*time.Second, func() error {
		keys, err := metadata.KeysForTest(ctxT(t), a.(*metadata.Etcd))
		if err != nil {
			return err
		}
		n := 0
		for _, k := range keys {
			if strings.HasPrefix(k, "/controller/") {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("%d candidacies, want 2", n)
		}
		return nil
	})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	cancel()
	start := time.Now()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("Campaign won although another node held the election")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Campaign still running 5s after its context ended with etcd down")
	}
	closed := make(chan struct{})
	go func() { _ = lead.Close(); _ = a.Close(); _ = b.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close still running 10s after etcd stopped")
	}
	t.Logf("campaign and close ended %v after etcd stopped", time.Since(start).Round(time.Millisecond))
}
