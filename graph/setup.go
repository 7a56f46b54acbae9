package graph

import (
	"bytes"
	"context"
	"errors"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// SetupOp is a validated operation that is one `createQueue` or one
// `subscribe` mutation and nothing else, selecting only fields of its
// result that are plain values (no arguments, no @defer), with its
// arguments read as the generated code reads them. A device that comes
// back runs exactly these two, once each, on the WebSocket it streams on:
// in a reconnect storm they are most of the work (BENCHMARKS.md, R).
type SetupOp struct {
	field, alias string
	pos          *ast.Position
	sel          []graphql.CollectedField // the result's fields, as gqlgen collects them

	ttl              *int    // createQueue
	queue, resource  string  // subscribe
	proof, knownEtag *string // subscribe
	resultType       string  // "Queue" or "ResourceSubscription"
}

// queueFields and subscriptionFields are the fields ExecSetup can write:
// every field of Queue and ResourceSubscription (none takes arguments).
var (
	queueFields        = map[string]bool{"__typename": true, "name": true, "createdAt": true, "expiresAt": true, "ttlSeconds": true, "depth": true, "lastSeq": true, "subscriptionCount": true}
	subscriptionFields = map[string]bool{"__typename": true, "queue": true, "resource": true, "etag": true, "etagUnknown": true, "createdAt": true}
)

// ParseSetupOp recognises a validated operation that is exactly one
// `createQueue` or `subscribe` mutation (any alias, variables or
// literals, fragments, @skip/@include already applied). ok is false for
// anything else, and for arguments the generated code would refuse:
// those go through gqlgen, which gives its own answer.
func ParseSetupOp(opCtx *graphql.OperationContext) (op SetupOp, ok bool) {
	if opCtx.Operation == nil || opCtx.Operation.Operation != ast.Mutation {
		return SetupOp{}, false
	}
	root := graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Mutation"})
	if len(root) != 1 || len(root[0].Deferrables) > 0 {
		return SetupOp{}, false
	}
	f := root[0]
	args := f.ArgumentMap(opCtx.Variables)
	var fields map[string]bool
	switch f.Name {
	case "createQueue":
		fields, op.resultType = queueFields, "Queue"
		if v := args["ttlSeconds"]; v != nil {
			n, err := graphql.UnmarshalInt(v)
			if err != nil {
				return SetupOp{}, false
			}
			op.ttl = &n
		}
	case "subscribe":
		fields, op.resultType = subscriptionFields, "ResourceSubscription"
		var err error
		if op.queue, err = graphql.UnmarshalString(args["queue"]); err != nil {
			return SetupOp{}, false
		}
		if op.resource, err = graphql.UnmarshalString(args["resource"]); err != nil {
			return SetupOp{}, false
		}
		if op.proof, ok = optionalString(args["proof"]); !ok {
			return SetupOp{}, false
		}
		if op.knownEtag, ok = optionalString(args["knownEtag"]); !ok {
			return SetupOp{}, false
		}
	default:
		return SetupOp{}, false
	}
	op.sel = graphql.CollectFields(opCtx, f.Selections, []string{op.resultType})
	for _, s := range op.sel {
		if !fields[s.Name] || len(s.Deferrables) > 0 || len(s.Arguments) > 0 || len(s.Selections) > 0 {
			return SetupOp{}, false
		}
	}
	op.field, op.alias, op.pos = f.Name, f.Alias, f.Position
	return op, true
}

// optionalString reads an optional String argument as unmarshalOString
// does; ok is false where it would fail.
func optionalString(v any) (*string, bool) {
	if v == nil {
		return nil, true
	}
	s, err := graphql.UnmarshalString(v)
	if err != nil {
		return nil, false
	}
	return &s, true
}

// ExecSetup runs op through its resolver and returns the response gqlgen's
// executor would have made for it: the selected fields under the field's
// alias, written with gqlgen's own marshalers in the order gqlgen collects
// them, or the resolver's error on the field's path (through present, the
// executor's error presenter) with data null, since the field is
// non-null. A panic becomes recov's error, as in the executor. Tests
// compare the two answers byte for byte (server, TestSetup_FastPathAnswersAsGqlgen).
func (r *Resolver) ExecSetup(ctx context.Context, op SetupOp, present graphql.ErrorPresenterFunc, recov graphql.RecoverFunc) (resp *graphql.Response) {
	defer func() {
		if v := recover(); v != nil {
			resp = fieldError(ctx, recov(ctx, v), op.alias, nil, present)
		}
	}()
	var values map[string]graphql.Marshaler
	m := &mutationResolver{r}
	switch op.field {
	case "createQueue":
		q, err := m.CreateQueue(ctx, op.ttl)
		if err != nil {
			return fieldError(ctx, err, op.alias, op.pos, present)
		}
		values = map[string]graphql.Marshaler{
			"name": graphql.MarshalString(q.Name), "createdAt": graphql.MarshalTime(q.CreatedAt), "expiresAt": graphql.MarshalTime(q.ExpiresAt),
			"ttlSeconds": graphql.MarshalInt(q.TTLSeconds), "depth": graphql.MarshalInt(q.Depth), "lastSeq": q.LastSeq,
			"subscriptionCount": graphql.MarshalInt(q.SubscriptionCount),
		}
	case "subscribe":
		s, err := m.Subscribe(ctx, op.queue, op.resource, op.proof, op.knownEtag)
		if err != nil {
			return fieldError(ctx, err, op.alias, op.pos, present)
		}
		values = map[string]graphql.Marshaler{
			"queue": graphql.MarshalString(s.Queue), "resource": graphql.MarshalString(s.Resource),
			"etag": graphql.MarshalString(s.Etag), "etagUnknown": graphql.MarshalBoolean(s.EtagUnknown), "createdAt": graphql.MarshalTime(s.CreatedAt),
		}
	}
	values["__typename"] = graphql.MarshalString(op.resultType)
	var b bytes.Buffer
	b.WriteString(`{"`)
	b.WriteString(op.alias) // a GraphQL name: nothing to escape
	b.WriteString(`":{`)
	for i, s := range op.sel {
		v := values[s.Name]
		if v == graphql.Null {
			// Only a zero time marshals to null, and the store never
			// answers one; gqlgen would null the whole result.
			return fieldError(ctx, errors.New("internal error: a null in a non-null field"), op.alias, nil, present)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(s.Alias)
		b.WriteString(`":`)
		v.MarshalGQL(&b)
	}
	b.WriteString("}}")
	return &graphql.Response{Data: b.Bytes()}
}
