package group

// ListGroups: v0-5.
//
// Lists the groups of every partition loaded here (the broker merges the
// answers of all coordinators for the client). v4+ (KIP-518) filters by
// state and v5+ (KIP-848) by type ("classic", "consumer"), both
// case-insensitively, and return the state and type. While any partition is
// still loading the answer carries COORDINATOR_LOAD_IN_PROGRESS next to the
// groups found so far, as Kafka's does.

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListGroups handles a ListGroups request (v0-5).
func (c *Coordinator) ListGroups(_ context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	states := lowerSet(req.StatesFilter)
	types := lowerSet(req.TypesFilter)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	if slices.Contains(c.mu.parts, partitionLoading) {
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
	}
	for _, id := range sortedKeys(c.mu.groups) {
		g := c.mu.groups[id]
		state, typ := g.stateName(), g.kind.String()
		if len(states) > 0 && !states[strings.ToLower(state)] {
			continue
		}
		if len(types) > 0 && !types[typ] {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group = id
		lg.ProtocolType = g.wireProtocolType()
		lg.GroupState = state
		lg.GroupType = typ
		resp.Groups = append(resp.Groups, lg)
	}
	return resp
}

func lowerSet(ss []string) map[string]bool {
	out := make(map[string]bool, len(ss))
	for _, s := range ss {
		out[strings.ToLower(s)] = true
	}
	return out
}
