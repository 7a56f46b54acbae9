package server

import (
	"context"
	"strconv"

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
	// maxExpanded caps the selections of an operation once its fragments
	// are expanded (MaxTokens): without fragments a document cannot
	// exceed it, so the cap bites only on fragment reuse.
	maxExpanded int
}

var (
	_ graphql.HandlerExtension        = (*limits)(nil)
	_ graphql.OperationContextMutator = (*limits)(nil)
)

func (l *limits) ExtensionName() string                      { return "meshgate-limits" }
func (l *limits) Validate(es graphql.ExecutableSchema) error { l.es = es; return nil }

func (l *limits) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	// Measure on the fragment graph first: linear in the document, so a
	// fragment that spreads another twice, n times over, costs n steps
	// here, not 2^n. Only an operation whose expanded tree is known to be
	// small is walked by gqlgen's complexity calculator.
	if err := checkLiterals(opCtx.Doc); err != nil {
		return err
	}
	m := newShape(opCtx.Doc).selections(opCtx.Operation.SelectionSet)
	if m.depth > l.maxDepth {
		return limitError("operation is nested deeper than the limit of %d", l.maxDepth)
	}
	if m.size > l.maxExpanded {
		return limitError("operation expands to more than %d selections", l.maxExpanded)
	}
	if m.waits > 1 {
		// Each waiting field parks a goroutine (and a queue reader) for
		// up to a minute: aliases would multiply one request's cost.
		return limitError("at most one notifications field with waitSeconds per request, got %d", m.waits)
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

// measure is what a selection set costs once its fragments are expanded:
// size counts every field, inline fragment and spread; depth is the
// selection depth with introspection fields (and what is below them) left
// out; waits counts the long-polls (notifications fields with a
// waitSeconds that is not a literal 0 or null).
type measure struct{ size, depth, waits int }

// shape measures selection sets of one document, each named fragment once
// (memoised), so its work is linear in the document's length.
type shape struct {
	doc  *ast.QueryDocument
	memo map[string]measure
	busy map[string]bool // fragments being measured: a cycle counts as empty
}

func newShape(doc *ast.QueryDocument) *shape {
	return &shape{doc: doc, memo: map[string]measure{}, busy: map[string]bool{}}
}

// satAdd adds sizes, saturating well below overflow.
func satAdd(a, b int) int { return min(a+b, 1<<40) }

func (s *shape) selections(set ast.SelectionSet) measure {
	var m measure
	for _, sel := range set {
		switch x := sel.(type) {
		case *ast.Field:
			c := s.selections(x.SelectionSet)
			m.size = satAdd(m.size, satAdd(1, c.size))
			m.waits = satAdd(m.waits, c.waits)
			if waits(x) {
				m.waits = satAdd(m.waits, 1)
			}
			if !(len(x.Name) > 2 && x.Name[:2] == "__") {
				m.depth = max(m.depth, 1+c.depth)
			}
		case *ast.InlineFragment:
			c := s.selections(x.SelectionSet)
			m.size = satAdd(m.size, satAdd(1, c.size))
			m.waits = satAdd(m.waits, c.waits)
			m.depth = max(m.depth, c.depth)
		case *ast.FragmentSpread:
			c := s.fragment(x.Name)
			m.size = satAdd(m.size, satAdd(1, c.size))
			m.waits = satAdd(m.waits, c.waits)
			m.depth = max(m.depth, c.depth)
		}
	}
	return m
}

// waits reports whether f is a long-poll: Query.notifications with a
// waitSeconds argument that may be non-zero.
func waits(f *ast.Field) bool {
	if f.Name != "notifications" || f.ObjectDefinition == nil || f.ObjectDefinition.Name != "Query" {
		return false
	}
	a := f.Arguments.ForName("waitSeconds")
	if a == nil || a.Value == nil {
		return false
	}
	switch a.Value.Kind {
	case ast.NullValue:
		return false
	case ast.IntValue:
		return a.Value.Raw != "0"
	}
	return true // a variable: it may wait
}

func (s *shape) fragment(name string) measure {
	if m, ok := s.memo[name]; ok {
		return m
	}
	f := s.doc.Fragments.ForName(name)
	if f == nil || s.busy[name] {
		return measure{} // unknown or cyclic: validation has already refused it
	}
	s.busy[name] = true
	m := s.selections(f.SelectionSet)
	delete(s.busy, name)
	s.memo[name] = m
	return m
}

// checkLiterals refuses a document with a number literal that has no Go
// value (an Int past 64 bits, a Float past float64's range): gqlparser
// panics on those when it builds argument maps (ast/argmap.go), so every
// literal in the document (arguments of fields and directives, nested
// lists and objects, variable defaults) is checked first. Linear in the
// document.
func checkLiterals(doc *ast.QueryDocument) *gqlerror.Error {
	var bad *ast.Value
	var value func(v *ast.Value)
	value = func(v *ast.Value) {
		if v == nil || bad != nil {
			return
		}
		switch v.Kind {
		case ast.IntValue:
			if _, err := strconv.ParseInt(v.Raw, 10, 64); err != nil {
				bad = v
			}
		case ast.FloatValue:
			if _, err := strconv.ParseFloat(v.Raw, 64); err != nil {
				bad = v
			}
		case ast.ListValue, ast.ObjectValue:
			for _, c := range v.Children {
				value(c.Value)
			}
		}
	}
	args := func(l ast.ArgumentList) {
		for _, a := range l {
			value(a.Value)
		}
	}
	dirs := func(l ast.DirectiveList) {
		for _, d := range l {
			args(d.Arguments)
		}
	}
	var set func(ss ast.SelectionSet)
	set = func(ss ast.SelectionSet) {
		for _, sel := range ss {
			switch x := sel.(type) {
			case *ast.Field:
				args(x.Arguments)
				dirs(x.Directives)
				set(x.SelectionSet)
			case *ast.InlineFragment:
				dirs(x.Directives)
				set(x.SelectionSet)
			case *ast.FragmentSpread:
				dirs(x.Directives)
			}
		}
	}
	for _, op := range doc.Operations {
		for _, v := range op.VariableDefinitions {
			value(v.DefaultValue)
			dirs(v.Directives)
		}
		dirs(op.Directives)
		set(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		dirs(f.Directives)
		set(f.SelectionSet)
	}
	if bad == nil {
		return nil
	}
	err := gqlerror.Errorf("number %.40s is out of range", bad.Raw)
	if bad.Position != nil {
		err.Locations = []gqlerror.Location{{Line: bad.Position.Line, Column: bad.Position.Column}}
	}
	err.Extensions = map[string]any{"code": graph.CodeBadUserInput}
	return err
}
