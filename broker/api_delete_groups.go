package broker

// DeleteGroups: v0-3. The group coordinator (package coordinator/group)
// implements it; see its delete.go for the per-version behaviour.
//
// Share groups (KIP-932): an empty share group's share state (the
// __share_group_state entries of every partition of the topics it last
// subscribed to) is deleted first, through the share coordinator; only
// when that succeeded is the group itself deleted, so a failure leaves the
// group in place for a retry (its error code is the group's answer). A
// share group with members gets NON_EMPTY_GROUP from the coordinator and
// keeps its state.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

func (b *Broker) deleteGroupsAPI() api {
	return api{key: 42, min: 0, max: 3, handle: b.handleDeleteGroups}
}

func (b *Broker) handleDeleteGroups(ctx context.Context, r *request) (kmsg.Response, error) {
	ctx = b.clientCtx(ctx, r)
	req := r.req.(*kmsg.DeleteGroupsRequest)
	ids := uniq.Strings(req.Groups)
	failed := make(map[string]int16)
	rest := make([]string, 0, len(ids))
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info, code := b.coord.ShareGroup(id)
		if code != 0 || !info.Empty {
			rest = append(rest, id) // not a share group, or the coordinator answers it
			continue
		}
		if err := b.deleteShareGroupState(ctx, id, info.Topics); err != nil {
			b.log.Warn("deleting share group state failed", "group", id, "err", err)
			failed[id] = shareStateDeleteCode(err)
			continue
		}
		rest = append(rest, id)
	}
	if len(failed) == 0 {
		return b.coord.DeleteGroups(ctx, req), nil
	}
	sub := *req
	sub.Groups = rest
	done := b.coord.DeleteGroups(ctx, &sub)
	byID := make(map[string]kmsg.DeleteGroupsResponseGroup, len(done.Groups))
	for _, g := range done.Groups {
		byID[g.Group] = g
	}
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range ids {
		g, ok := byID[id]
		if code, bad := failed[id]; bad || !ok {
			g = kmsg.NewDeleteGroupsResponseGroup()
			g.Group, g.ErrorCode = id, code
			if !bad {
				g.ErrorCode = kerr.UnknownServerError.Code
			}
			if req.Version >= 3 {
				msg := kerr.ErrorForCode(g.ErrorCode).Error()
				g.ErrorMessage = &msg
			}
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp, nil
}

// shareStateDeleteCode is the DeleteGroups code for a failed share state
// deletion: the Kafka error it carries, else COORDINATOR_NOT_AVAILABLE
// (retriable).
func shareStateDeleteCode(err error) int16 {
	var ke *kerr.Error
	if errors.As(err, &ke) && ke.Code != 0 {
		return ke.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}
