package txn

// ListTransactions: v0-2 (KIP-664, KIP-994 v1 duration filter, KIP-1152 v2
// transactional id pattern). Lists the transactional ids of the
// partitions loaded here, ordered by id, filtered by state (unknown state
// names are returned in UnknownStateFilters), producer id, how long ago
// the transaction started (Kafka's rule: kept when now - start >
// duration, so ids with no transaction, start -1, pass), and, from v2, a
// regular expression the whole id must match (RE2 syntax, as Kafka's
// RE2J; INVALID_REGULAR_EXPRESSION when it does not compile).
// COORDINATOR_LOAD_IN_PROGRESS while any partition is loading.

import (
	"context"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

// maxPatternBytes and maxPatternInsts bound a v2 transactional id pattern.
// Go's regexp (like RE2J) matches in time linear in the input, times the
// size of the compiled program; bounding the program bounds the cost per
// id. Matching runs without the coordinator lock and stops when the
// request's context ends.
const (
	maxPatternBytes = 1024
	maxPatternInsts = 1000
)

// ListTransactions handles ListTransactions v0-2 for the partitions loaded
// here.
func (c *Coordinator) ListTransactions(ctx context.Context, req *kmsg.ListTransactionsRequest) *kmsg.ListTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	var pattern *regexp.Regexp
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		var ok bool
		if pattern, ok = compileIDPattern(*req.TransactionalIDPattern); !ok {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp
		}
	}
	states := make(map[kmsg.TransactionState]struct{}, len(stateNames))
	for _, name := range uniq.Strings(req.StateFilters) {
		if s, ok := stateNames[name]; ok {
			states[s] = struct{}{}
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	producers := make(map[int64]struct{}, uniq.SizeHint(len(req.ProducerIDFilters)))
	for _, id := range req.ProducerIDFilters {
		producers[id] = struct{}{}
	}
	duration := int64(-1)
	if req.Version >= 1 {
		duration = req.DurationFilterMillis
	}
	filter := func(m meta, now int64) bool {
		if _, ok := states[m.state]; len(req.StateFilters) > 0 && !ok {
			return false
		}
		if _, ok := producers[m.producerID]; len(producers) > 0 && !ok {
			return false
		}
		return duration < 0 || now-m.startMs > duration
	}
	listed, code := c.listLocked(filter)
	if code != 0 {
		resp.ErrorCode = code
		resp.UnknownStateFilters = nil
		return resp
	}
	if pattern != nil {
		kept := listed[:0]
		for i, ts := range listed {
			if i%256 == 0 && ctx.Err() != nil {
				resp.ErrorCode = kerr.RequestTimedOut.Code
				return resp
			}
			if pattern.MatchString(ts.TransactionalID) {
				kept = append(kept, ts)
			}
		}
		listed = kept
	}
	slices.SortFunc(listed, func(a, b kmsg.ListTransactionsResponseTransactionState) int {
		return strings.Compare(a.TransactionalID, b.TransactionalID)
	})
	resp.TransactionStates = listed
	return resp
}

// listLocked takes the lock and returns the durable transactions keep
// accepts, or the code the whole listing fails with.
func (c *Coordinator) listLocked(keep func(m meta, now int64) bool) ([]kmsg.ListTransactionsResponseTransactionState, int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	for _, ps := range c.mu.parts {
		if ps != nil && !ps.loaded {
			return nil, kerr.CoordinatorLoadInProgress.Code
		}
	}
	now := c.nowMs()
	var out []kmsg.ListTransactionsResponseTransactionState
	for _, ps := range c.mu.parts {
		if ps == nil {
			continue
		}
		for _, t := range ps.txns {
			if !t.durable || !keep(t.m, now) {
				continue
			}
			ts := kmsg.NewListTransactionsResponseTransactionState()
			ts.TransactionalID, ts.ProducerID, ts.TransactionState = t.id, t.m.producerID, t.m.state.String()
			out = append(out, ts)
		}
	}
	return out, 0
}

// compileIDPattern compiles a KIP-1152 pattern, which must match the whole
// transactional id, within the size bounds.
func compileIDPattern(p string) (*regexp.Regexp, bool) {
	if len(p) > maxPatternBytes {
		return nil, false
	}
	expr := "^(?:" + p + ")$"
	parsed, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, false
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil || len(prog.Inst) > maxPatternInsts {
		return nil, false
	}
	re, err := regexp.Compile(expr)
	return re, err == nil
}
