package broker

// DescribeClientQuotas: v0-1 (KIP-546).
//
// The filter is a list of components, one per entity type (user,
// client-id, ip): match exact (a name), default (the <default> entity) or
// any (the type present with any name, default included). An entity
// matches when every component does; strict also requires that it has no
// other part. The answer is read from etcd, so it shows every change made
// through AlterClientQuotas on any broker. A malformed filter is answered
// with INVALID_REQUEST (a type named twice, a match string with the wrong
// match type, ip combined with user or client-id) or UNSUPPORTED_VERSION
// (an unknown entity or match type) as a request-wide error, as Kafka's
// ClientQuotasImage does. No ip quotas are stored, so ip filters match
// nothing.

import (
	"context"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/metadata"
)

func (b *Broker) describeClientQuotasAPI() api {
	return api{key: 48, min: 0, max: 1, handle: b.handleDescribeClientQuotas}
}

// Kafka's quota entity types.
const (
	entityUser     = "user"
	entityClientID = "client-id"
	entityIP       = "ip"
)

// quotaFilter is a validated DescribeClientQuotas filter: exact holds the
// types matched on a name (nil: the default), anyOf the types that only
// need to be present.
type quotaFilter struct {
	exact  map[string]*string
	anyOf  map[string]bool
	strict bool
}

func (b *Broker) handleDescribeClientQuotas(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.DescribeClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	f, code, msg := parseQuotaFilter(req)
	if code != 0 {
		resp.ErrorCode, resp.ErrorMessage = code, kmsg.StringPtr(msg)
		return resp, nil
	}
	all, err := b.meta.ClientQuotas(ctx)
	if err != nil {
		b.log.Warn("describe client quotas", "err", err)
		resp.ErrorCode, resp.ErrorMessage = kerr.UnknownServerError.Code, kmsg.StringPtr(err.Error())
		return resp, nil
	}
	for _, q := range all {
		parts := entityParts(q.Entity)
		if !f.matches(parts) {
			continue
		}
		e := kmsg.NewDescribeClientQuotasResponseEntry()
		for _, typ := range []string{entityUser, entityClientID} {
			if name, ok := parts[typ]; ok {
				ent := kmsg.NewDescribeClientQuotasResponseEntryEntity()
				ent.Type, ent.Name = typ, name
				e.Entity = append(e.Entity, ent)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(q.Values)) {
			v := kmsg.NewDescribeClientQuotasResponseEntryValue()
			v.Key, v.Value = k, q.Values[k]
			e.Values = append(e.Values, v)
		}
		resp.Entries = append(resp.Entries, e)
	}
	return resp, nil
}

func parseQuotaFilter(req *kmsg.DescribeClientQuotasRequest) (quotaFilter, int16, string) {
	f := quotaFilter{exact: map[string]*string{}, anyOf: map[string]bool{}, strict: req.Strict}
	for _, c := range req.Components {
		_, dupExact := f.exact[c.EntityType]
		switch {
		case c.EntityType == "":
			return f, kerr.InvalidRequest.Code, "Invalid empty entity type."
		case dupExact || f.anyOf[c.EntityType]:
			return f, kerr.InvalidRequest.Code, "Entity type " + c.EntityType + " cannot appear more than once in the filter."
		case c.EntityType != entityUser && c.EntityType != entityClientID && c.EntityType != entityIP:
			return f, kerr.UnsupportedVersion.Code, "Unsupported entity type " + c.EntityType
		}
		switch c.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if c.Match == nil {
				return f, kerr.InvalidRequest.Code, "Request specified MATCH_TYPE_EXACT, but set match string to null."
			}
			f.exact[c.EntityType] = c.Match
		case kmsg.QuotasMatchTypeDefault:
			if c.Match != nil {
				return f, kerr.InvalidRequest.Code, "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
			}
			f.exact[c.EntityType] = nil
		case kmsg.QuotasMatchTypeAny:
			if c.Match != nil {
				return f, kerr.InvalidRequest.Code, "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
			}
			f.anyOf[c.EntityType] = true
		default:
			return f, kerr.UnsupportedVersion.Code, "Unknown match type " + c.MatchType.String()
		}
	}
	_, ipExact := f.exact[entityIP]
	if ipExact || f.anyOf[entityIP] {
		if len(f.exact)+len(f.anyOf) > 1 {
			return f, kerr.InvalidRequest.Code, "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component."
		}
	}
	return f, 0, ""
}

// entityParts lists an entity's parts by Kafka entity type; a nil name is
// the default.
func entityParts(e metadata.QuotaEntity) map[string]*string {
	parts := map[string]*string{}
	add := func(typ string, n metadata.QuotaName) {
		switch {
		case n.Default:
			parts[typ] = nil
		case n.Name != "":
			parts[typ] = kmsg.StringPtr(n.Name)
		}
	}
	add(entityUser, e.User)
	add(entityClientID, e.ClientID)
	return parts
}

func (f quotaFilter) matches(parts map[string]*string) bool {
	if f.strict && len(parts) != len(f.exact)+len(f.anyOf) {
		return false
	}
	for typ, want := range f.exact {
		got, ok := parts[typ]
		if !ok || (got == nil) != (want == nil) || (got != nil && *got != *want) {
			return false
		}
	}
	for typ := range f.anyOf {
		if _, ok := parts[typ]; !ok {
			return false
		}
	}
	return true
}
