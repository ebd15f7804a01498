package group

// DeleteGroups: v0-3.
//
// Deletes groups with no members, together with their committed offsets:
// tombstones for every offset and metadata record are written before the
// answer. A group with members gets NON_EMPTY_GROUP, a missing one
// GROUP_ID_NOT_FOUND. Pending transactional offsets do not keep a group
// from being deleted (Kafka deletes them with it): their partitions get
// tombstones too, and their transaction's marker then finds nothing. The
// empty group id is a valid (if odd) group here, as in Kafka, for backwards
// compatibility. v3 adds an error message. A group id given more than once
// is deleted and answered once, as Kafka does.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

// DeleteGroups handles a DeleteGroups request (v0-3).
func (c *Coordinator) DeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range uniq.Strings(req.Groups) {
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = id
		dg.ErrorCode = c.deleteGroup(ctx, id)
		if dg.ErrorCode != 0 && req.Version >= 3 {
			msg := kerr.ErrorForCode(dg.ErrorCode).Error()
			dg.ErrorMessage = &msg
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (c *Coordinator) deleteGroup(ctx context.Context, id string) int16 {
	p := PartitionFor(id, c.cfg.NumPartitions)
	pm := &c.persistMu[p]
	pm.Lock()
	defer pm.Unlock()
	c.mu.Lock()
	if _, code := c.servableLocked(id); code != 0 {
		c.mu.Unlock()
		return code
	}
	g := c.mu.groups[id]
	switch {
	case g == nil:
		c.mu.Unlock()
		return kerr.GroupIDNotFound.Code
	case g.hasMembers() || (g.kind == kindClassic && g.state != stateEmpty):
		c.mu.Unlock()
		return kerr.NonEmptyGroup.Code
	}
	records := tombstonesLocked(g)
	c.dropGroupLocked(g, kerr.CoordinatorNotAvailable.Code)
	delete(c.mu.groups, id)
	c.mu.Unlock()
	c.log.Info("deleted group", "group", id)
	if len(records) == 0 {
		return 0
	}
	pctx, cancel := c.persistCtx(ctx)
	defer cancel()
	if err := c.cfg.Persister.Persist(pctx, p, records); err != nil {
		c.log.Warn("writing group deletion failed", "group", id, "err", err)
		return availabilityErrorCode(err)
	}
	return 0
}
