package broker

// ShareGroupDescribe: v1 (KIP-932). The group coordinator (package
// coordinator/group) implements it; see its share_describe.go for the
// behaviour. v0 (Kafka 4.0's early access) is not served, as in Kafka 4.1+.
// While share groups are disabled (the finalized share.version is 0) every
// group is answered UNSUPPORTED_VERSION, as Kafka's.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

func (b *Broker) shareGroupDescribeAPI() api {
	return api{key: 77, min: 1, max: 1, handle: b.handleShareGroupDescribe}
}

func (b *Broker) handleShareGroupDescribe(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.ShareGroupDescribeRequest)
	if !b.shareEnabled() {
		resp := req.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
		for _, id := range uniq.Strings(req.GroupIDs) {
			g := kmsg.NewShareGroupDescribeResponseGroup()
			g.GroupID = id
			g.ErrorCode = kerr.UnsupportedVersion.Code
			resp.Groups = append(resp.Groups, g)
		}
		return resp, nil
	}
	return b.coord.ShareGroupDescribe(b.clientCtx(ctx, r), req), nil
}
