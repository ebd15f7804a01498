package broker

import (
	"context"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
)

// request is one decoded request moving through a connection. Handlers read
// hdr and req; they may set finish and noResponse.
type request struct {
	hdr    protocol.Header
	req    kmsg.Request
	conn   *conn
	handle handlerFunc
	resp   kmsg.Response
	start  time.Time // when the request was decoded, for latency metrics
	hold   hold      // what it holds of the request budgets (see conn.reserve)

	// finish, when set, runs on the connection's writer before the response
	// is encoded. Handlers use it for waits that must not hold up the next
	// request on the connection (an fsync, acks=all replication), so that
	// pipelined requests share one fsync while responses stay in order.
	finish func(ctx context.Context)
	// noResponse suppresses the response (produce with acks=0).
	noResponse bool
	// q is the request's client quota accounting (quotas.go).
	q quotaState
}

// handlerFunc serves one API. A returned error means the connection is
// unusable and is closed; outcomes the client should see are error codes in
// the response.
type handlerFunc func(ctx context.Context, r *request) (kmsg.Response, error)

// api is one row of the table that drives both dispatch and ApiVersions.
type api struct {
	key      int16
	min, max int16
	handle   handlerFunc
	// listFromV0 makes ApiVersions list MinVersion 0 while versions below
	// min are still refused (Produce in Kafka 4, KAFKA-18659).
	listFromV0 bool
}

// apiTable indexes the supported APIs by key.
type apiTable struct {
	byKey map[int16]api
	keys  []int16
}

func newAPITable(apis ...api) *apiTable {
	t := &apiTable{byKey: make(map[int16]api, len(apis))}
	for _, a := range apis {
		t.byKey[a.key] = a
		t.keys = append(t.keys, a.key)
	}
	sort.Slice(t.keys, func(i, j int) bool { return t.keys[i] < t.keys[j] })
	return t
}

// lookup returns the API for key if version is within its range.
func (t *apiTable) lookup(key, version int16) (api, bool) {
	a, ok := t.byKey[key]
	if !ok || version < a.min || version > a.max {
		return api{}, false
	}
	return a, true
}

// apis lists every API this broker serves. Each handler file declares its own
// row (xxxAPI) next to its code, with the versions it implements.
func (b *Broker) apis() *apiTable {
	return newAPITable(
		b.produceAPI(),
		b.fetchAPI(),
		b.listOffsetsAPI(),
		b.metadataAPI(),
		b.apiVersionsAPI(),
		b.createTopicsAPI(),
		b.deleteTopicsAPI(),
		b.deleteRecordsAPI(),
		b.initProducerIDAPI(),
		b.offsetForLeaderEpochAPI(),
		b.describeConfigsAPI(),
		b.alterConfigsAPI(),
		b.createPartitionsAPI(),
		b.incrementalAlterConfigsAPI(),
		b.describeClusterAPI(),
		b.electLeadersAPI(),
		b.findCoordinatorAPI(),
		b.joinGroupAPI(),
		b.heartbeatAPI(),
		b.leaveGroupAPI(),
		b.syncGroupAPI(),
		b.describeGroupsAPI(),
		b.listGroupsAPI(),
		b.offsetCommitAPI(),
		b.offsetFetchAPI(),
		b.deleteGroupsAPI(),
		b.offsetDeleteAPI(),
		b.consumerGroupHeartbeatAPI(),
		b.consumerGroupDescribeAPI(),
		b.shareGroupHeartbeatAPI(),
		b.shareGroupDescribeAPI(),
		b.describeLogDirsAPI(),
		b.describeClientQuotasAPI(),
		b.alterClientQuotasAPI(),
		b.addPartitionsToTxnAPI(),
		b.addOffsetsToTxnAPI(),
		b.endTxnAPI(),
		b.writeTxnMarkersAPI(),
		b.txnOffsetCommitAPI(),
		b.describeProducersAPI(),
		b.describeTransactionsAPI(),
		b.listTransactionsAPI(),
		b.updateFeaturesAPI(),
		b.listConfigResourcesAPI(),
		b.shareFetchAPI(),
		b.shareAcknowledgeAPI(),
		b.initializeShareGroupStateAPI(),
		b.readShareGroupStateAPI(),
		b.writeShareGroupStateAPI(),
		b.deleteShareGroupStateAPI(),
		b.readShareGroupStateSummaryAPI(),
		b.describeShareGroupOffsetsAPI(),
		b.alterShareGroupOffsetsAPI(),
		b.deleteShareGroupOffsetsAPI(),
	)
}
