package server

import (
	"context"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"meshgate/graph"
)

// limits rejects operations that are too deep or too complex before any
// resolver runs. gqlgen has no depth limit of its own, and its complexity
// extension answers with a code that is not ours.
type limits struct {
	es            graphql.ExecutableSchema
	maxDepth      int
	maxComplexity int
}

var (
	_ graphql.HandlerExtension        = (*limits)(nil)
	_ graphql.OperationContextMutator = (*limits)(nil)
)

func (l *limits) ExtensionName() string                      { return "meshgate-limits" }
func (l *limits) Validate(es graphql.ExecutableSchema) error { l.es = es; return nil }

func (l *limits) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	if d := depth(opCtx.Doc, opCtx.Operation.SelectionSet, 0, l.maxDepth); d > l.maxDepth {
		return limitError("operation is nested deeper than the limit of %d", l.maxDepth)
	}
	if c := complexity.Calculate(ctx, l.es, opCtx.Operation, opCtx.Variables); c > l.maxComplexity {
		return limitError("operation has complexity %d, over the limit of %d", c, l.maxComplexity)
	}
	return nil
}

func limitError(format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	err.Extensions = map[string]any{"code": graph.CodeLimitExceeded}
	return err
}

// depth returns the selection depth, stopping once past limit (fragment
// cycles are already rejected by validation, but the cut-off keeps a
// hostile document cheap). Introspection fields do not count.
func depth(doc *ast.QueryDocument, set ast.SelectionSet, d, limit int) int {
	if d > limit {
		return d
	}
	m := d
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if len(s.Name) > 2 && s.Name[:2] == "__" {
				continue
			}
			if len(s.SelectionSet) > 0 {
				m = max(m, depth(doc, s.SelectionSet, d+1, limit))
			} else {
				m = max(m, d+1)
			}
		case *ast.InlineFragment:
			m = max(m, depth(doc, s.SelectionSet, d, limit))
		case *ast.FragmentSpread:
			if f := doc.Fragments.ForName(s.Name); f != nil {
				m = max(m, depth(doc, f.SelectionSet, d, limit))
			}
		}
	}
	return m
}
