package server

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"

	"meshgate/graph"
	"meshgate/shard"
)

// maxPublishPlans bounds the documents whose publish plan is kept; a
// document seen after that goes through gqlgen every time, as before.
const maxPublishPlans = 256

// publishPlans holds the plans of `publish` documents gqlgen has validated
// (graph.PublishPlan), by query text and operation name. Safe for
// concurrent use.
type publishPlans struct {
	answered atomic.Int64 // requests answered from a plan (tests read it)

	mu sync.RWMutex
	m  map[planKey]*graph.PublishPlan
}

type planKey struct{ query, operationName string }

func newPublishPlans() *publishPlans {
	return &publishPlans{m: make(map[planKey]*graph.PublishPlan)}
}

// get returns the plan of a document and operation name, if one is kept.
func (ps *publishPlans) get(query, operationName string) (*graph.PublishPlan, bool) {
	ps.mu.RLock()
	p, ok := ps.m[planKey{query, operationName}]
	ps.mu.RUnlock()
	return p, ok
}

// learn keeps the plan of opCtx's operation, read as op, when it has one
// and there is room.
func (ps *publishPlans) learn(opCtx *graphql.OperationContext, op graph.PublishOp) {
	k := planKey{opCtx.RawQuery, opCtx.OperationName}
	ps.mu.RLock()
	_, known := ps.m[k]
	full := len(ps.m) >= maxPublishPlans
	ps.mu.RUnlock()
	if known || full {
		return
	}
	plan, ok := graph.NewPublishPlan(opCtx, op)
	if !ok {
		return
	}
	ps.mu.Lock()
	if len(ps.m) < maxPublishPlans {
		ps.m[k] = plan
	}
	ps.mu.Unlock()
}

// answerPlanned answers a POST whose document and operation name are those
// of a planned `publish` (publishPlans), without gqlgen's parse,
// validation, limits or execution and without decoding the variables
// into Go values: the payload keeps the bytes it came as. It answers
// exactly as answerJSON would, or reports false (nothing written) when
// the plan cannot be sure (graph.PublishPlan.Bind), and the request goes
// through gqlgen.
func (s *Server) answerPlanned(w http.ResponseWriter, r *http.Request, media string, p shard.Principal, params *graphql.RawParams, vars json.RawMessage) bool {
	if s.slowPublish || r.Method != http.MethodPost || params.Extensions != nil {
		return false
	}
	plan, ok := s.plans.get(params.Query, params.OperationName)
	if !ok {
		return false
	}
	var m map[string]json.RawMessage
	if len(vars) > 0 && string(vars) != "null" {
		if err := json.Unmarshal(vars, &m); err != nil {
			return false
		}
	}
	op, ok := plan.Bind(m)
	if !ok {
		return false
	}
	ctx := graphql.StartOperationTrace(graph.WithPrincipal(r.Context(), p)) // as operationContext
	s.plans.answered.Add(1)
	resp := s.resolver.ExecPublish(ctx, op, s.present, s.recov)
	var body [][]byte
	if len(resp.Errors) == 0 {
		// What json.Marshal makes of {"data":{"<alias>":n}}, without
		// its scan: a name and a number have nothing to escape.
		body = [][]byte{[]byte(`{"data":`), resp.Data, []byte("}")}
	}
	s.writeResult(ctx, w, media, resp, body)
	return true
}
