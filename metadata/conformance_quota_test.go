package metadata_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sluicedev/sluice/metadata"
	"github.com/sluicedev/sluice/metadata/etcdtest"
)

func clientEntity(name string) metadata.QuotaEntity {
	return metadata.QuotaEntity{ClientID: metadata.QuotaName{Name: name}}
}

var defaultClient = metadata.QuotaEntity{ClientID: metadata.QuotaName{Default: true}}

func testClientQuotaCAS(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	a := clientEntity("app/1") // a '/' must not escape the key
	got, err := s.ClientQuota(ctx, a)
	if err != nil || got.Revision != 0 || got.Values == nil || len(got.Values) != 0 {
		t.Fatalf("ClientQuota of an absent entity = %+v, %v", got, err)
	}
	vals := map[string]float64{"producer_byte_rate": 1024, "request_percentage": 12.5}
	q1, err := s.SetClientQuota(ctx, metadata.ClientQuota{Entity: a, Values: vals})
	if err != nil || q1.Revision == 0 {
		t.Fatalf("create = %+v, %v", q1, err)
	}
	vals["mutated"] = 1 // the store must have copied
	if _, err := s.SetClientQuota(ctx, metadata.ClientQuota{Entity: a, Values: vals}); !errors.Is(err, metadata.ErrConflict) {
		t.Fatalf("create over an existing record: %v, want ErrConflict", err)
	}
	got, err = s.ClientQuota(ctx, a)
	want := map[string]float64{"producer_byte_rate": 1024, "request_percentage": 12.5}
	if err != nil || got.Revision != q1.Revision || !reflect.DeepEqual(got.Values, want) || got.Entity != a {
		t.Fatalf("ClientQuota = %+v, %v; want %v at %d", got, err, want, q1.Revision)
	}
	q2, err := s.SetClientQuota(ctx, metadata.ClientQuota{Entity: a, Values: map[string]float64{"consumer_byte_rate": 5}, Revision: q1.Revision})
	if err != nil || q2.Revision <= q1.Revision {
		t.Fatalf("update = %+v, %v", q2, err)
	}
	if _, err := s.SetClientQuota(ctx, metadata.ClientQuota{Entity: a, Values: want, Revision: q1.Revision}); !errors.Is(err, metadata.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	if _, err := s.SetClientQuota(ctx, metadata.ClientQuota{Entity: a, Revision: q1.Revision}); !errors.Is(err, metadata.ErrConflict) {
		t.Fatalf("stale delete: %v, want ErrConflict", err)
	}
	del, err := s.SetClientQuota(ctx, metadata.ClientQuota{Entity: a, Revision: q2.Revision})
	if err != nil || del.Revision != 0 {
		t.Fatalf("delete = %+v, %v", del, err)
	}
	if got, _ := s.ClientQuota(ctx, a); got.Revision != 0 || len(got.Values) != 0 {
		t.Fatalf("after delete: %+v", got)
	}
	if _, err := s.SetClientQuota(ctx, metadata.ClientQuota{Values: want}); !errors.Is(err, metadata.ErrInvalidQuota) {
		t.Fatalf("empty entity: %v, want ErrInvalidQuota", err)
	}
}

func testClientQuotaList(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	entities := []metadata.QuotaEntity{
		clientEntity("zeta"),
		defaultClient,
		clientEntity("<default>"), // a client literally named so is not the default
		{User: metadata.QuotaName{Name: "alice"}},
		{User: metadata.QuotaName{Name: "alice"}, ClientID: metadata.QuotaName{Default: true}},
		{User: metadata.QuotaName{Default: true}, ClientID: metadata.QuotaName{Name: "c1"}},
	}
	for i, e := range entities {
		if _, err := s.SetClientQuota(ctx, metadata.ClientQuota{Entity: e, Values: map[string]float64{"producer_byte_rate": float64(i + 1)}}); err != nil {
			t.Fatalf("set %+v: %v", e, err)
		}
	}
	list, err := s.ClientQuotas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(entities) {
		t.Fatalf("listed %d entities, want %d: %+v", len(list), len(entities), list)
	}
	seen := map[metadata.QuotaEntity]float64{}
	for _, q := range list {
		seen[q.Entity] = q.Values["producer_byte_rate"]
	}
	for i, e := range entities {
		if seen[e] != float64(i+1) {
			t.Fatalf("entity %+v listed with %v, want %d (list %+v)", e, seen[e], i+1, list)
		}
	}
	// Key order: client-id entities before user entities.
	if list[0].Entity.User.IsSet() || list[len(list)-1].Entity.User.Name != "alice" {
		t.Fatalf("list order %+v", list)
	}
}

func recvQuota(t *testing.T, ch <-chan metadata.ClientQuotaEvent) metadata.ClientQuotaEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("quota watch closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no quota event")
	}
	return metadata.ClientQuotaEvent{}
}

func testClientQuotaWatch(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	first, err := s.SetClientQuota(ctx, metadata.ClientQuota{Entity: defaultClient, Values: map[string]float64{"consumer_byte_rate": 100}})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.WatchClientQuotas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev := recvQuota(t, ch)
	if ev.Type != metadata.EventPut || !ev.Snapshot || ev.Quota.Entity != defaultClient || ev.Quota.Revision != first.Revision {
		t.Fatalf("snapshot event %+v", ev)
	}
	b := clientEntity("b")
	put, err := s.SetClientQuota(ctx, metadata.ClientQuota{Entity: b, Values: map[string]float64{"producer_byte_rate": 7}})
	if err != nil {
		t.Fatal(err)
	}
	ev = recvQuota(t, ch)
	if ev.Type != metadata.EventPut || ev.Snapshot || ev.Quota.Entity != b || ev.Quota.Values["producer_byte_rate"] != 7 || ev.Quota.Revision != put.Revision {
		t.Fatalf("put event %+v", ev)
	}
	if _, err := s.SetClientQuota(ctx, metadata.ClientQuota{Entity: b, Revision: put.Revision}); err != nil {
		t.Fatal(err)
	}
	ev = recvQuota(t, ch)
	if ev.Type != metadata.EventDelete || ev.Quota.Entity != b || ev.Quota.Values["producer_byte_rate"] != 7 {
		t.Fatalf("delete event %+v", ev)
	}
}

// TestEtcdQuotaKeyLayout pins the quota keys and records an operator reads
// with etcdctl: one key per entity, defaults as <default>, names escaped.
func TestEtcdQuotaKeyLayout(t *testing.T) {
	s, err := metadata.NewEtcd(ctxT(t), metadata.EtcdConfig{Endpoints: etcdtest.StartEmbedded(t), Prefix: "/qlayout"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := ctxT(t)
	for _, e := range []metadata.QuotaEntity{
		defaultClient,
		clientEntity("a/b<c>"),
		{User: metadata.QuotaName{Name: "alice"}, ClientID: metadata.QuotaName{Default: true}},
	} {
		if _, err := s.SetClientQuota(ctx, metadata.ClientQuota{Entity: e, Values: map[string]float64{"producer_byte_rate": 1024}}); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := metadata.KeysForTest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/quotas/client-id/<default>", "/quotas/client-id/a%2Fb%3Cc%3E", "/quotas/user/alice/client-id/<default>"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	if raw, _ := metadata.RawGetForTest(ctx, s, "/quotas/client-id/<default>"); raw != `{"producer_byte_rate":1024}` {
		t.Fatalf("record %s", raw)
	}
}
