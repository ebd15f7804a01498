package broker

// AlterClientQuotas: v0-1 (KIP-546).
//
// Each entry names an entity (user and/or client-id, each a name or null
// for <default>) and operations that set or remove quota keys:
// producer_byte_rate and consumer_byte_rate (whole bytes per second),
// request_percentage and controller_mutation_rate. The new values are
// written to etcd with compare-and-swap on the entity's record (retried on
// a concurrent change), so two alterations of one entity never lose each
// other's keys; every broker applies them from its watch. Removing every
// key deletes the entity. Errors are per entry, with Kafka's messages:
// INVALID_REQUEST for an empty, repeated or unknown entity type, an empty
// name, an unknown or repeated key, or a value that is not positive (or
// fractional for a byte rate). IP entities (connection_creation_rate) are
// not supported and answer INVALID_REQUEST. ValidateOnly checks and writes
// nothing.

import (
	"context"
	"errors"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/metadata"
)

func (b *Broker) alterClientQuotasAPI() api {
	return api{key: 49, min: 0, max: 1, handle: b.handleAlterClientQuotas}
}

// quotaKeyIntegral lists the quota keys Kafka accepts and whether each is a
// LONG (whole numbers only) rather than a DOUBLE.
var quotaKeyIntegral = map[string]bool{
	"producer_byte_rate":       true,
	"consumer_byte_rate":       true,
	"request_percentage":       false,
	"controller_mutation_rate": false,
}

// casRetries bounds the re-reads of an entity whose record changed under an
// alteration.
const casRetries = 8

func (b *Broker) handleAlterClientQuotas(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.AlterClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	for _, e := range req.Entries {
		out := kmsg.NewAlterClientQuotasResponseEntry()
		for _, ent := range e.Entity {
			oe := kmsg.NewAlterClientQuotasResponseEntryEntity()
			oe.Type, oe.Name = ent.Type, ent.Name
			out.Entity = append(out.Entity, oe)
		}
		entity, code, msg := parseQuotaEntity(e.Entity)
		if code == 0 {
			code, msg = validateQuotaOps(e.Ops)
		}
		if code == 0 && !req.ValidateOnly {
			code, msg = b.alterClientQuota(ctx, entity, e.Ops)
		}
		if code != 0 {
			out.ErrorCode, out.ErrorMessage = code, kmsg.StringPtr(msg)
		}
		resp.Entries = append(resp.Entries, out)
	}
	return resp, nil
}

func parseQuotaEntity(parts []kmsg.AlterClientQuotasRequestEntryEntity) (metadata.QuotaEntity, int16, string) {
	var e metadata.QuotaEntity
	if len(parts) == 0 {
		return e, kerr.InvalidRequest.Code, "Invalid empty client quota entity"
	}
	seen := map[string]bool{}
	for _, p := range parts {
		if seen[p.Type] {
			return e, kerr.InvalidRequest.Code, "Invalid empty client quota entity, duplicate entity entry " + p.Type
		}
		seen[p.Type] = true
		var n metadata.QuotaName
		switch {
		case p.Name == nil:
			n.Default = true
		case *p.Name == "":
			return e, kerr.InvalidRequest.Code, "Empty " + p.Type + " not supported"
		default:
			n.Name = *p.Name
		}
		switch p.Type {
		case entityUser:
			e.User = n
		case entityClientID:
			e.ClientID = n
		case entityIP:
			return e, kerr.InvalidRequest.Code, "IP quota entities (connection_creation_rate) are not supported by this broker"
		default:
			return e, kerr.InvalidRequest.Code, "Unhandled client quota entity type: " + p.Type
		}
	}
	return e, 0, ""
}

func validateQuotaOps(ops []kmsg.AlterClientQuotasRequestEntryOp) (int16, string) {
	seen := map[string]bool{}
	for _, op := range ops {
		integral, ok := quotaKeyIntegral[op.Key]
		switch {
		case !ok:
			return kerr.InvalidRequest.Code, "Invalid configuration key " + op.Key
		case seen[op.Key]:
			return kerr.InvalidRequest.Code, "Duplicate quota key " + op.Key
		}
		seen[op.Key] = true
		if op.Remove {
			continue
		}
		switch {
		case math.IsNaN(op.Value) || math.IsInf(op.Value, 0):
			return kerr.InvalidRequest.Code, "Quota " + op.Key + " must be a finite number"
		case op.Value <= 0:
			return kerr.InvalidRequest.Code, "Quota " + op.Key + " must be greater than 0"
		case integral && op.Value > math.MaxInt64:
			return kerr.InvalidRequest.Code, "Proposed value for " + op.Key + " is too large for a LONG."
		case integral && math.Abs(math.Mod(op.Value, 1)) > 1e-6:
			return kerr.InvalidRequest.Code, op.Key + " cannot be a fractional value."
		}
	}
	return 0, ""
}

// alterClientQuota applies ops to the entity's stored quotas with
// compare-and-swap, re-reading on a concurrent change.
func (b *Broker) alterClientQuota(ctx context.Context, e metadata.QuotaEntity, ops []kmsg.AlterClientQuotasRequestEntryOp) (int16, string) {
	for range casRetries {
		cur, err := b.meta.ClientQuota(ctx, e)
		if err != nil {
			b.log.Warn("read client quota", "err", err)
			return kerr.UnknownServerError.Code, err.Error()
		}
		for _, op := range ops {
			if op.Remove {
				delete(cur.Values, op.Key)
			} else {
				cur.Values[op.Key] = op.Value
			}
		}
		_, err = b.meta.SetClientQuota(ctx, cur)
		switch {
		case err == nil:
			return 0, ""
		case errors.Is(err, metadata.ErrConflict):
			continue
		default:
			b.log.Warn("write client quota", "err", err)
			return kerr.UnknownServerError.Code, err.Error()
		}
	}
	return kerr.UnknownServerError.Code, "the quota entity kept changing concurrently; retry"
}
