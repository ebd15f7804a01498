package broker

// ApiVersions: v0-4.
//
// The response lists exactly the table that dispatch uses, and from v3 the
// transaction.version feature (KIP-584, KIP-890). A request newer
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
	fillFeatures(resp)
	return resp, nil
}

// transactionVersion is the transaction.version feature Sluice supports
// and has finalized (KIP-890 part 2): clients that know it add partitions
// through produce v12 and TxnOffsetCommit v5, and EndTxn v5 bumps epochs.
const transactionVersion = 2

// fillFeatures lists the supported and finalized features (KIP-584,
// ApiVersions v3+). The finalized set never changes, so its epoch is fixed.
func fillFeatures(resp *kmsg.ApiVersionsResponse) {
	if resp.Version < 3 {
		return
	}
	sf := kmsg.NewApiVersionsResponseSupportedFeature()
	sf.Name, sf.MinVersion, sf.MaxVersion = "transaction.version", 0, transactionVersion
	resp.SupportedFeatures = append(resp.SupportedFeatures, sf)
	ff := kmsg.NewApiVersionsResponseFinalizedFeature()
	ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = "transaction.version", transactionVersion, transactionVersion
	resp.FinalizedFeatures = append(resp.FinalizedFeatures, ff)
	resp.FinalizedFeaturesEpoch = 1
}

func (b *Broker) fillAPIVersions(resp *kmsg.ApiVersionsResponse) {
	for _, k := range b.table.keys {
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
