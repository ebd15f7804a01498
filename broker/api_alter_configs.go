package broker

// AlterConfigs: v0-2.
//
// The legacy form: the settings given replace every override the resource
// had (anything not named returns to its default). Topic, broker and group
// (type 32, as Kafka's ConfigAdminManager accepts it) resources are
// supported; see alter_configs.go and group_config.go for validation and
// storage.
// A resource named more than once is left unchanged and answered
// INVALID_REQUEST with the message of Kafka's brokers
// (ConfigAdminManager.preprocess), once, as Kafka's controller answers it:
// an answer per copy would be ten times the request. A resource naming a
// config twice gets INVALID_REQUEST too.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) alterConfigsAPI() api {
	return api{key: 33, min: 0, max: 2, handle: b.handleAlterConfigs}
}

func (b *Broker) handleAlterConfigs(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	dup := repeated(len(req.Resources), func(i int) string {
		return string(rune(req.Resources[i].ResourceType)) + req.Resources[i].ResourceName
	})
	var once onceSet
	for _, rr := range req.Resources {
		res := kmsg.NewAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		if key := string(rune(rr.ResourceType)) + rr.ResourceName; dup[key] {
			if once.first(key) {
				res.ErrorCode, res.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("Each resource must appear at most once.")
				resp.Resources = append(resp.Resources, res)
			}
			continue
		}
		configs := rr.Configs
		res.ErrorCode, res.ErrorMessage = b.alterResource(ctx, rr.ResourceType, rr.ResourceName, func(map[string]string) (map[string]string, int16, *string) {
			next := map[string]string{}
			for _, c := range configs {
				if _, ok := next[c.Name]; ok {
					return nil, kerr.InvalidRequest.Code, kmsg.StringPtr("Error due to duplicate config keys")
				}
				if c.Value == nil {
					return nil, kerr.InvalidRequest.Code, kmsg.StringPtr("null value for " + c.Name)
				}
				next[c.Name] = *c.Value
			}
			return next, 0, nil
		}, req.ValidateOnly)
		resp.Resources = append(resp.Resources, res)
	}
	return resp, nil
}
