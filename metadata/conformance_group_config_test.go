package metadata_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sluicedev/sluice/metadata"
)

func testGroupConfigCAS(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	g := "orders/eu" // a '/' must not escape the key
	got, err := s.GroupConfig(ctx, g)
	if err != nil || got.Revision != 0 || got.Configs == nil || len(got.Configs) != 0 || got.Group != g {
		t.Fatalf("GroupConfig of an absent group = %+v, %v", got, err)
	}
	cfg := map[string]string{"share.record.lock.duration.ms": "20000"}
	c1, err := s.SetGroupConfig(ctx, metadata.GroupConfig{Group: g, Configs: cfg})
	if err != nil || c1.Revision == 0 {
		t.Fatalf("create = %+v, %v", c1, err)
	}
	cfg["mutated"] = "1" // the store must have copied
	if _, err := s.SetGroupConfig(ctx, metadata.GroupConfig{Group: g, Configs: cfg}); !errors.Is(err, metadata.ErrConflict) {
		t.Fatalf("create over an existing record: %v, want ErrConflict", err)
	}
	want := map[string]string{"share.record.lock.duration.ms": "20000"}
	if got, err := s.GroupConfig(ctx, g); err != nil || got.Revision != c1.Revision || !reflect.DeepEqual(got.Configs, want) {
		t.Fatalf("GroupConfig = %+v, %v; want %v at %d", got, err, want, c1.Revision)
	}
	c2, err := s.SetGroupConfig(ctx, metadata.GroupConfig{Group: g, Configs: map[string]string{"share.isolation.level": "read_committed"}, Revision: c1.Revision})
	if err != nil || c2.Revision <= c1.Revision {
		t.Fatalf("update = %+v, %v", c2, err)
	}
	if _, err := s.SetGroupConfig(ctx, metadata.GroupConfig{Group: g, Revision: c1.Revision}); !errors.Is(err, metadata.ErrConflict) {
		t.Fatalf("stale delete: %v, want ErrConflict", err)
	}
	if _, err := s.SetGroupConfig(ctx, metadata.GroupConfig{Group: "b", Configs: want}); err != nil {
		t.Fatal(err)
	}
	list, err := s.GroupConfigs(ctx)
	if err != nil || len(list) != 2 || list[0].Group != "b" || list[1].Group != g {
		t.Fatalf("GroupConfigs = %+v, %v", list, err)
	}
	del, err := s.SetGroupConfig(ctx, metadata.GroupConfig{Group: g, Revision: c2.Revision})
	if err != nil || del.Revision != 0 {
		t.Fatalf("delete = %+v, %v", del, err)
	}
	if got, _ := s.GroupConfig(ctx, g); got.Revision != 0 || len(got.Configs) != 0 {
		t.Fatalf("after delete: %+v", got)
	}
	if _, err := s.SetGroupConfig(ctx, metadata.GroupConfig{Configs: want}); !errors.Is(err, metadata.ErrInvalidGroupConfig) {
		t.Fatalf("empty group: %v, want ErrInvalidGroupConfig", err)
	}
}

func testGroupConfigWatch(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	first, err := s.SetGroupConfig(ctx, metadata.GroupConfig{Group: "a", Configs: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.WatchGroupConfigs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recv := func() metadata.GroupConfigEvent {
		t.Helper()
		select {
		case ev := <-ch:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no group config event")
			return metadata.GroupConfigEvent{}
		}
	}
	if ev := recv(); ev.Type != metadata.EventPut || !ev.Snapshot || ev.Config.Group != "a" || ev.Config.Revision != first.Revision {
		t.Fatalf("snapshot event %+v", ev)
	}
	put, err := s.SetGroupConfig(ctx, metadata.GroupConfig{Group: "b", Configs: map[string]string{"x": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := recv(); ev.Type != metadata.EventPut || ev.Snapshot || ev.Config.Group != "b" || ev.Config.Configs["x"] != "1" || ev.Config.Revision != put.Revision {
		t.Fatalf("put event %+v", ev)
	}
	if _, err := s.SetGroupConfig(ctx, metadata.GroupConfig{Group: "b", Revision: put.Revision}); err != nil {
		t.Fatal(err)
	}
	if ev := recv(); ev.Type != metadata.EventDelete || ev.Config.Group != "b" || ev.Config.Configs["x"] != "1" {
		t.Fatalf("delete event %+v", ev)
	}
}

func testFeaturesCAS(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	f, err := s.Features(ctx)
	if err != nil || f.Revision != 0 || f.Levels == nil || len(f.Levels) != 0 {
		t.Fatalf("Features of a new store = %+v, %v", f, err)
	}
	ch, err := s.WatchFeatures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f1, err := s.SetFeatures(ctx, metadata.FinalizedFeatures{Levels: map[string]int16{"share.version": 0}})
	if err != nil || f1.Revision == 0 {
		t.Fatalf("first set = %+v, %v", f1, err)
	}
	select {
	case ev := <-ch:
		if ev.Snapshot || ev.Features.Revision != f1.Revision || ev.Features.Levels["share.version"] != 0 || len(ev.Features.Levels) != 1 {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no features event")
	}
	if _, err := s.SetFeatures(ctx, metadata.FinalizedFeatures{Levels: map[string]int16{"share.version": 1}}); !errors.Is(err, metadata.ErrConflict) {
		t.Fatalf("stale set: %v, want ErrConflict", err)
	}
	f2, err := s.SetFeatures(ctx, metadata.FinalizedFeatures{Levels: map[string]int16{"share.version": 1}, Revision: f1.Revision})
	if err != nil || f2.Revision <= f1.Revision {
		t.Fatalf("update = %+v, %v", f2, err)
	}
	if got, err := s.Features(ctx); err != nil || got.Revision != f2.Revision || got.Levels["share.version"] != 1 {
		t.Fatalf("Features = %+v, %v", got, err)
	}
}
