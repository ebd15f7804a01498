package broker

// IncrementalAlterConfigs: v0-1.
//
// KIP-339: each setting is SET, DELETE (back to its default), APPEND or
// SUBTRACT (list settings only, e.g. cleanup.policy). Everything else a
// resource has is left as it is. Topic, broker and group (type 32)
// resources are supported; see alter_configs.go and group_config.go.
// A resource named more than once is left unchanged and answered
// INVALID_REQUEST with the message of Kafka's brokers
// (ConfigAdminManager.preprocess), once, as Kafka's controller answers it:
// an answer per copy would be ten times the request. A resource naming a
// config twice gets INVALID_REQUEST too.

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) incrementalAlterConfigsAPI() api {
	return api{key: 44, min: 0, max: 1, handle: b.handleIncrementalAlterConfigs}
}

func (b *Broker) handleIncrementalAlterConfigs(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	dup := repeated(len(req.Resources), func(i int) string {
		return string(rune(req.Resources[i].ResourceType)) + req.Resources[i].ResourceName
	})
	var once onceSet
	for _, rr := range req.Resources {
		res := kmsg.NewIncrementalAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		if key := string(rune(rr.ResourceType)) + rr.ResourceName; dup[key] {
			if once.first(key) {
				res.ErrorCode, res.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("Each resource must appear at most once.")
				resp.Resources = append(resp.Resources, res)
			}
			continue
		}
		configs := rr.Configs
		isList := func(name string) bool {
			if rr.ResourceType == kmsg.ConfigResourceTypeTopic {
				d := b.settings.reg.topic[name]
				return d != nil && d.typ == typeList
			}
			d := b.settings.reg.broker[name]
			return d != nil && d.typ == typeList
		}
		res.ErrorCode, res.ErrorMessage = b.alterResource(ctx, rr.ResourceType, rr.ResourceName, func(cur map[string]string) (map[string]string, int16, *string) {
			return applyIncremental(cur, configs, isList, b.currentValue(rr.ResourceType, rr.ResourceName))
		}, req.ValidateOnly)
		resp.Resources = append(resp.Resources, res)
	}
	return resp, nil
}

// currentValue resolves a setting's effective value, for APPEND/SUBTRACT on
// a setting that has no override yet.
func (b *Broker) currentValue(typ kmsg.ConfigResourceType, name string) func(string) string {
	return func(cfg string) string {
		if typ == kmsg.ConfigResourceTypeTopic {
			if ts := b.topics.get(name); ts != nil && b.settings.reg.topic[cfg] != nil {
				return b.settings.topic(cfg, ts.meta().Configs).value
			}
			return ""
		}
		return b.settings.broker(cfg).value
	}
}

func applyIncremental(cur map[string]string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig, isList func(string) bool, effective func(string) string) (map[string]string, int16, *string) {
	seen := map[string]bool{}
	for _, op := range ops {
		if seen[op.Name] {
			return nil, kerr.InvalidRequest.Code, kmsg.StringPtr("Error due to duplicate config keys")
		}
		seen[op.Name] = true
		switch op.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if op.Value == nil {
				return nil, kerr.InvalidRequest.Code, kmsg.StringPtr("null value not supported for " + op.Name)
			}
			cur[op.Name] = *op.Value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(cur, op.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if !isList(op.Name) {
				return nil, kerr.InvalidConfig.Code, kmsg.StringPtr("APPEND and SUBTRACT apply only to list settings: " + op.Name)
			}
			if op.Value == nil {
				return nil, kerr.InvalidRequest.Code, kmsg.StringPtr("null value not supported for " + op.Name)
			}
			base, ok := cur[op.Name]
			if !ok {
				base = effective(op.Name)
			}
			cur[op.Name] = editList(base, *op.Value, op.Op == kmsg.IncrementalAlterConfigOpAppend)
		default:
			return nil, kerr.InvalidRequest.Code, kmsg.StringPtr("unknown operation")
		}
	}
	return cur, 0, nil
}

// editList appends or removes the comma-separated items of v to/from base.
func editList(base, v string, add bool) string {
	var items []string
	has := map[string]bool{}
	for _, it := range strings.Split(base, ",") {
		if it = strings.TrimSpace(it); it != "" && !has[it] {
			items = append(items, it)
			has[it] = true
		}
	}
	for _, it := range strings.Split(v, ",") {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		if add && !has[it] {
			items = append(items, it)
			has[it] = true
		}
		if !add && has[it] {
			delete(has, it)
			kept := items[:0]
			for _, x := range items {
				if x != it {
					kept = append(kept, x)
				}
			}
			items = kept
		}
	}
	return strings.Join(items, ",")
}
