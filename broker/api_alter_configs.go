package broker

// AlterConfigs: v0-2.
//
// The legacy form: the settings given replace every override the resource
// had (anything not named returns to its default). Topic and broker
// resources are supported; see alter_configs.go for validation and storage.

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
	for _, rr := range req.Resources {
		res := kmsg.NewAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		configs := rr.Configs
		res.ErrorCode, res.ErrorMessage = b.alterResource(ctx, rr.ResourceType, rr.ResourceName, func(map[string]string) (map[string]string, int16, *string) {
			next := map[string]string{}
			for _, c := range configs {
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
