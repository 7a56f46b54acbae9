package graph

import (
	"context"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"meshgate/graph/model"
)

// PublishOp is a validated operation that is one `publish` mutation and
// nothing else, with its arguments read as the generated code reads them.
type PublishOp struct {
	alias, resource, etag string
	payload               model.JSON
	pos                   *ast.Position
}

// ParsePublishOp recognises a validated operation that is exactly one
// `publish` mutation (any alias, variables or literals, @skip/@include
// already applied). ok is false for anything else, and for arguments the
// generated code would refuse: those go through gqlgen, which gives its
// own answer.
func ParsePublishOp(opCtx *graphql.OperationContext) (op PublishOp, ok bool) {
	if opCtx.Operation == nil || opCtx.Operation.Operation != ast.Mutation {
		return PublishOp{}, false
	}
	root := graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Mutation"})
	if len(root) != 1 || root[0].Name != "publish" {
		return PublishOp{}, false
	}
	f := root[0]
	args := f.ArgumentMap(opCtx.Variables)
	var err error
	if op.resource, err = graphql.UnmarshalString(args["resource"]); err != nil {
		return PublishOp{}, false
	}
	if op.etag, err = graphql.UnmarshalString(args["etag"]); err != nil {
		return PublishOp{}, false
	}
	if v := args["payload"]; v != nil {
		if err := op.payload.UnmarshalGQL(v); err != nil {
			return PublishOp{}, false
		}
	}
	op.alias, op.pos = f.Alias, f.Position
	return op, true
}

// ExecPublish runs op through the `publish` resolver and returns the
// response gqlgen's executor would have made for it: the count under the
// field's alias, or the resolver's error on the field's path (through
// present, the executor's error presenter) with data null, since the
// field is non-null. A panic becomes recov's error, as in the executor.
//
// It skips gqlgen's execution (field contexts, middleware chains, the
// response writer), which costs more than the rest of a publish to a
// few subscribers.
func (r *Resolver) ExecPublish(ctx context.Context, op PublishOp, present graphql.ErrorPresenterFunc, recov graphql.RecoverFunc) (resp *graphql.Response) {
	defer func() {
		if v := recover(); v != nil {
			resp = fieldError(ctx, recov(ctx, v), op.alias, nil, present)
		}
	}()
	n, err := (&mutationResolver{r}).Publish(ctx, op.resource, op.etag, op.payload)
	if err != nil {
		return fieldError(ctx, err, op.alias, op.pos, present)
	}
	b := make([]byte, 0, len(op.alias)+24)
	b = append(b, `{"`...)
	b = append(b, op.alias...) // a GraphQL name: nothing to escape
	b = append(b, `":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, '}')
	return &graphql.Response{Data: b}
}
