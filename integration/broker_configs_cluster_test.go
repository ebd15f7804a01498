package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A dynamic broker setting altered through one broker applies on every
// broker, at once and after a restart, as Kafka's dynamic broker configs do.
func TestDynamicBrokerConfigsApplyClusterWide(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	alter := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeBroker, "" // cluster-wide default
	op := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	op.Name, op.Op, op.Value = "log.retention.ms", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr("4321000")
	res.Configs = append(res.Configs, op)
	alter.Resources = append(alter.Resources, res)
	resp, err := alter.RequestWith(ctx, cl.Broker(1))
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Resources[0].ErrorCode; code != 0 {
		t.Fatalf("IncrementalAlterConfigs through broker 1: error %d", code)
	}

	// describe asks broker id for its own log.retention.ms.
	describe := func(id int32) (string, kmsg.ConfigSource, error) {
		req := kmsg.NewPtrDescribeConfigsRequest()
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeBroker, fmt.Sprint(id)
		r.ConfigNames = []string{"log.retention.ms"}
		req.Resources = append(req.Resources, r)
		resp, err := req.RequestWith(ctx, cl.Broker(int(id)))
		if err != nil {
			return "", 0, err
		}
		for _, rr := range resp.Resources {
			for _, cfg := range rr.Configs {
				if cfg.Name == "log.retention.ms" && cfg.Value != nil {
					return *cfg.Value, cfg.Source, nil
				}
			}
		}
		return "", 0, fmt.Errorf("broker %d does not describe log.retention.ms", id)
	}
	waitDynamic := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			v, src, err := describe(2)
			if err == nil && v == "4321000" && src == kmsg.ConfigSourceDynamicDefaultBrokerConfig {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: broker 2 reports log.retention.ms=%q (source %v, err %v), want 4321000 from DYNAMIC_DEFAULT_BROKER_CONFIG", what, v, src, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitDynamic("after the alter through broker 1")

	p := c.procs[2]
	if err := p.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	p.restart()
	c.waitBrokers(2)
	waitDynamic("after broker 2 restarted")
}
