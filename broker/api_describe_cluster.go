package broker

// DescribeCluster: v0-2.
//
// KIP-700. Brokers are the live registrations in etcd; the controller is
// the broker Metadata names. Endpoint type 2 (controllers, KIP-919) is not a
// separate listener in Sluice: MISMATCHED_ENDPOINT_TYPE. Fenced brokers (v2)
// do not exist here: a broker without a lease is simply absent.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) describeClusterAPI() api {
	return api{key: 60, min: 0, max: 2, handle: b.handleDescribeCluster}
}

func (b *Broker) handleDescribeCluster(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = 1
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.MismatchedEndpointType.Code
		resp.ErrorMessage = kmsg.StringPtr("only broker endpoints are served")
		return resp, nil
	}
	resp.ClusterID = b.clusterID
	resp.ControllerID = b.controllerID()
	resp.ClusterAuthorizedOperations = authorizedOpsUnknown
	for _, br := range b.liveBrokers() {
		db := kmsg.NewDescribeClusterResponseBroker()
		db.NodeID, db.Host, db.Port = br.NodeID, br.Host, br.Port
		if br.Rack != "" {
			db.Rack = kmsg.StringPtr(br.Rack)
		}
		resp.Brokers = append(resp.Brokers, db)
	}
	return resp, nil
}
