package server

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/vektah/gqlparser/v2/ast"

	"meshgate/graph"
)

// newTestExecutor is the executor server.New builds, without a node:
// parse, validation and the limits, nothing that resolves.
func newTestExecutor() *executor.Executor {
	cfg, _ := Config{}.withDefaults()
	exec := executor.New(graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}}))
	exec.SetParserTokenLimit(cfg.MaxTokens)
	exec.SetErrorPresenter(graph.NewErrorPresenter())
	exec.Use(&limits{maxDepth: cfg.MaxDepth, maxComplexity: cfg.MaxComplexity, maxExpanded: cfg.MaxTokens})
	return exec
}

// FuzzGraphQLRequest sends arbitrary documents and variables through
// parse, validation and the limits. It must never panic, and an operation
// the limits accept must be one whose argument maps can be built (no
// literal without a Go value) and whose expanded tree is within the size
// and depth limits.
func FuzzGraphQLRequest(f *testing.F) {
	for _, s := range []string{
		`{ me { user device } }`,
		`query($q:String!){ notifications(queue:$q, after: 9223372036854775808) { lastSeq } }`,
		`query($q:String!){ notifications(queue:$q, after: 1e400) { lastSeq } }`,
		`mutation { publish(resource:"user:alice/a", etag:"e", payload: {id: 18446744073709551615}) }`,
		`mutation { publish(resource:"user:alice/a", etag:"e", payload: [1, [2, {x: -99999999999999999999}]]) }`,
		`query($q:String!, $a: Seq = 99999999999999999999){ notifications(queue:$q, after: $a) { lastSeq } }`,
		fragmentBomb(30),
		`query($q:String!){ a: notifications(queue:$q, waitSeconds:1) { lastSeq } b: notifications(queue:$q, waitSeconds:1) { lastSeq } }`,
		`{ ...F } fragment F on Query { ...F }`,
		`subscription($q:String!){ notifications(queue:$q) { seq kind } }`,
	} {
		f.Add(s, `{"q":"q1"}`)
	}
	exec := newTestExecutor()
	f.Fuzz(func(t *testing.T, query, vars string) {
		params := &graphql.RawParams{Query: query}
		if err := decodeObject([]byte(vars), &params.Variables); err != nil {
			params.Variables = nil
		}
		ctx := graphql.StartOperationTrace(context.Background())
		opCtx, errs := exec.CreateOperationContext(ctx, params)
		if errs != nil || opCtx == nil || opCtx.Operation == nil {
			return
		}
		m := newShape(opCtx.Doc).selections(opCtx.Operation.SelectionSet)
		if m.size > 10000 || m.depth > 10 {
			t.Fatalf("accepted an operation of size %d, depth %d", m.size, m.depth)
		}
		var walk func(set ast.SelectionSet)
		walk = func(set ast.SelectionSet) {
			for _, sel := range set {
				switch x := sel.(type) {
				case *ast.Field:
					if x.Definition != nil {
						_ = x.ArgumentMap(opCtx.Variables) // panics on a literal with no Go value
					}
					walk(x.SelectionSet)
				case *ast.InlineFragment:
					walk(x.SelectionSet)
				case *ast.FragmentSpread:
					if x.Definition != nil {
						walk(x.Definition.SelectionSet)
					}
				}
			}
		}
		walk(opCtx.Operation.SelectionSet)
	})
}
