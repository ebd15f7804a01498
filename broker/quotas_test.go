package broker

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/metadata"
	"github.com/sluicedev/sluice/protocol"
)

func TestQuotaHandlingTimeExcludesWaits(t *testing.T) {
	t.Parallel()
	start := time.Now().Add(-time.Second)
	fetch := &request{hdr: protocol.Header{Key: 1}, start: start, q: quotaState{waited: 900 * time.Millisecond}}
	if d := fetch.handlingTime(); d < 100*time.Millisecond || d > 500*time.Millisecond {
		t.Fatalf("fetch handling time %v, want about 100 ms (its long poll excluded)", d)
	}
	join := &request{hdr: protocol.Header{Key: 11}, start: start}
	if d := join.handlingTime(); d != 0 {
		t.Fatalf("JoinGroup charged %v; its rebalance wait is not request time", d)
	}
}

func TestQuotaDescribeFilter(t *testing.T) {
	t.Parallel()
	name := kmsg.StringPtr
	comp := func(typ string, mt kmsg.QuotasMatchType, match *string) kmsg.DescribeClientQuotasRequestComponent {
		return kmsg.DescribeClientQuotasRequestComponent{EntityType: typ, MatchType: mt, Match: match}
	}
	clientA := metadata.QuotaEntity{ClientID: metadata.QuotaName{Name: "a"}}
	clientDef := metadata.QuotaEntity{ClientID: metadata.QuotaName{Default: true}}
	userA := metadata.QuotaEntity{User: metadata.QuotaName{Name: "u"}, ClientID: metadata.QuotaName{Name: "a"}}
	cases := []struct {
		comps  []kmsg.DescribeClientQuotasRequestComponent
		strict bool
		code   int16
		match  []metadata.QuotaEntity
		miss   []metadata.QuotaEntity
	}{
		{comps: nil, match: []metadata.QuotaEntity{clientA, clientDef, userA}},
		{comps: nil, strict: true, miss: []metadata.QuotaEntity{clientA, userA}},
		{comps: []kmsg.DescribeClientQuotasRequestComponent{comp("client-id", kmsg.QuotasMatchTypeExact, name("a"))},
			match: []metadata.QuotaEntity{clientA, userA}, miss: []metadata.QuotaEntity{clientDef}},
		{comps: []kmsg.DescribeClientQuotasRequestComponent{comp("client-id", kmsg.QuotasMatchTypeDefault, nil)},
			match: []metadata.QuotaEntity{clientDef}, miss: []metadata.QuotaEntity{clientA}},
		{comps: []kmsg.DescribeClientQuotasRequestComponent{comp("client-id", kmsg.QuotasMatchTypeAny, nil)}, strict: true,
			match: []metadata.QuotaEntity{clientA, clientDef}, miss: []metadata.QuotaEntity{userA}},
		{comps: []kmsg.DescribeClientQuotasRequestComponent{comp("client-id", kmsg.QuotasMatchTypeExact, nil)}, code: kerr.InvalidRequest.Code},
		{comps: []kmsg.DescribeClientQuotasRequestComponent{comp("client-id", kmsg.QuotasMatchTypeDefault, name("x"))}, code: kerr.InvalidRequest.Code},
		{comps: []kmsg.DescribeClientQuotasRequestComponent{comp("user", kmsg.QuotasMatchTypeAny, nil), comp("user", kmsg.QuotasMatchTypeAny, nil)}, code: kerr.InvalidRequest.Code},
		{comps: []kmsg.DescribeClientQuotasRequestComponent{comp("ip", kmsg.QuotasMatchTypeAny, nil), comp("user", kmsg.QuotasMatchTypeAny, nil)}, code: kerr.InvalidRequest.Code},
		{comps: []kmsg.DescribeClientQuotasRequestComponent{comp("group", kmsg.QuotasMatchTypeAny, nil)}, code: kerr.UnsupportedVersion.Code},
		{comps: []kmsg.DescribeClientQuotasRequestComponent{comp("user", 7, nil)}, code: kerr.UnsupportedVersion.Code},
	}
	for i, c := range cases {
		f, code, _ := parseQuotaFilter(&kmsg.DescribeClientQuotasRequest{Components: c.comps, Strict: c.strict})
		if code != c.code {
			t.Errorf("case %d: code %d, want %d", i, code, c.code)
			continue
		}
		for _, e := range c.match {
			if !f.matches(entityParts(e)) {
				t.Errorf("case %d: %+v not matched", i, e)
			}
		}
		for _, e := range c.miss {
			if f.matches(entityParts(e)) {
				t.Errorf("case %d: %+v matched", i, e)
			}
		}
	}
}

func TestQuotaAlterValidation(t *testing.T) {
	t.Parallel()
	op := func(k string, v float64) kmsg.AlterClientQuotasRequestEntryOp {
		return kmsg.AlterClientQuotasRequestEntryOp{Key: k, Value: v}
	}
	good := [][]kmsg.AlterClientQuotasRequestEntryOp{
		{op("producer_byte_rate", 1024), op("request_percentage", 0.5), op("controller_mutation_rate", 1.5)},
		{{Key: "consumer_byte_rate", Remove: true}},
	}
	for _, ops := range good {
		if code, msg := validateQuotaOps(ops); code != 0 {
			t.Errorf("%+v refused: %s", ops, msg)
		}
	}
	bad := [][]kmsg.AlterClientQuotasRequestEntryOp{
		{op("producer_byte_rate", 10.5)},
		{op("consumer_byte_rate", 0)},
		{op("request_percentage", -1)},
		{op("connection_creation_rate", 1)},
		{op("producer_byte_rate", 1), op("producer_byte_rate", 2)},
	}
	for _, ops := range bad {
		if code, _ := validateQuotaOps(ops); code != kerr.InvalidRequest.Code {
			t.Errorf("%+v: code %d, want INVALID_REQUEST", ops, code)
		}
	}
	if _, code, _ := parseQuotaEntity(nil); code != kerr.InvalidRequest.Code {
		t.Error("empty entity accepted")
	}
	e, code, _ := parseQuotaEntity([]kmsg.AlterClientQuotasRequestEntryEntity{{Type: "user", Name: kmsg.StringPtr("u")}, {Type: "client-id"}})
	if code != 0 || e.User.Name != "u" || !e.ClientID.Default {
		t.Errorf("user=u, client-id=<default> parsed as %+v (%d)", e, code)
	}
}
