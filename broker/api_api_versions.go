package broker

// ApiVersions: v0-4.
//
// The response lists the table that dispatch uses, less the APIs of a
// feature finalized at level 0 (share groups with share.version 0, the
// KIP-848 consumer protocol with group.version 0), and from v3 the
// supported and finalized features (KIP-584; features.go). A request newer
// than v4 is answered as Kafka does (KIP-511): a v0 response carrying
// UNSUPPORTED_VERSION and the supported range, so the client can retry with a
// version both sides know. ApiVersions responses always use header v0.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) apiVersionsAPI() api {
	return api{key: 18, min: 0, max: 4, handle: b.handleAPIVersions}
}

func (b *Broker) handleAPIVersions(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	b.fillAPIVersions(resp)
	b.fillFeatures(resp)
	return resp, nil
}

func (b *Broker) fillAPIVersions(resp *kmsg.ApiVersionsResponse) {
	for _, k := range b.table.keys {
		if b.apiHidden(k) {
			continue
		}
		a := b.table.byKey[k]
		minV := a.min
		if a.listFromV0 {
			minV = 0
		}
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: a.key, MinVersion: minV, MaxVersion: a.max})
	}
}

// unsupportedAPIVersions is the v0 answer to an ApiVersions request newer than
// the broker knows.
func (b *Broker) unsupportedAPIVersions() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	b.fillAPIVersions(resp)
	return resp
}
