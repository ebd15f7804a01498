package integration

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicedev/sluice/broker"
	"github.com/sluicedev/sluice/metadata/etcdtest"
)

// TestExternalEtcdSharedMetadata runs two brokers against one external etcd
// (Debian's etcd-server): a topic created through one is visible through the
// other, both brokers appear in Metadata, and a restarted broker keeps the
// topic and its data.
func TestExternalEtcdSharedMetadata(t *testing.T) {
	t.Parallel()
	endpoints := etcdtest.StartExternal(t)
	cfg := func(id int32, dir string) broker.Config {
		return broker.Config{NodeID: id, Listen: "127.0.0.1:0", DataDir: dir, Etcd: endpoints, Logger: testLogger(t)}
	}
	dir1 := t.TempDir()
	b1 := startBrokerConfig(t, cfg(1, dir1))
	b2 := startBrokerConfig(t, cfg(2, t.TempDir()))

	createTopic(t, b1.addr(), "shared", 1, nil)
	cl := client(t, b1.addr(), kgo.DefaultProduceTopic("shared"))
	ctx := context.Background()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := admin(t, b2.addr())
	waitFor(t, 10*time.Second, func() error {
		md, err := adm.Metadata(ctx, "shared")
		if err != nil {
			return err
		}
		if len(md.Brokers) != 2 {
			return errorf("broker 2 sees %d brokers", len(md.Brokers))
		}
		if d := md.Topics["shared"]; d.Err != nil || len(d.Partitions) != 1 {
			return errorf("broker 2 sees topic: %+v", d)
		}
		return nil
	})

	// One of the two is the elected controller; when it goes, the other
	// takes over.
	var ctl int32
	waitFor(t, 10*time.Second, func() error {
		md, err := adm.Metadata(ctx)
		if err != nil {
			return err
		}
		if md.Controller != 1 && md.Controller != 2 {
			return errorf("controller %d", md.Controller)
		}
		ctl = md.Controller
		return nil
	})
	survivor, victim := b2, b1
	if ctl == 2 {
		survivor, victim = b1, b2
	}
	victim.stop()
	sadm := admin(t, survivor.addr())
	waitFor(t, 20*time.Second, func() error {
		md, err := sadm.Metadata(ctx)
		if err != nil {
			return err
		}
		if md.Controller == ctl {
			return errorf("controller is still the stopped broker %d", ctl)
		}
		return nil
	})
	b1.stop()
	b1 = startBrokerConfig(t, cfg(1, dir1))
	recs := consumeAll(t, b1.addr(), "shared", 1)
	if string(recs[0].Value) != "v" {
		t.Fatalf("after restart: %q", recs[0].Value)
	}
}
