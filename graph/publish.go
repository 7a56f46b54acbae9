package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

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

// PublishPlan is how the arguments of a validated `publish` operation
// come from a request's variables: literals read once, each variable by
// its declared type. A request with the same document and operation name
// as a planned one gets the same answer from gqlgen's parse, validation
// and limits (the complexity of `publish` is the default, 1, as long as
// Config.Complexity sets no function for it: a function of its arguments
// would make the limits depend on more than the text), so Bind can stand
// in for all of them and for the variables'
// decoding (server keeps the plans by document). Immutable once made:
// safe for concurrent use.
type PublishPlan struct {
	op   PublishOp // the literal arguments, the alias and the position
	vars []planVar // every variable the operation defines, in order
	// the variable each argument takes; "" for a literal or an absent one
	resource, etag, payload string
}

// planVar is a variable of a planned operation and the types it may have.
type planVar struct {
	name string
	kind planKind
}

type planKind int

const (
	planString      planKind = iota // String!
	planJSON                        // JSON
	planJSONNonNull                 // JSON!
)

// NewPublishPlan plans the operation of opCtx, which gqlgen has validated
// and ParsePublishOp has read as op. ok is false for an operation whose
// answer may depend on more than its variables' values as Bind reads
// them: a directive anywhere on it (@skip with a variable), more than the
// one field, a variable with a default, of another type, or inside a
// literal.
func NewPublishPlan(opCtx *graphql.OperationContext, op PublishOp) (plan *PublishPlan, ok bool) {
	o := opCtx.Operation
	if o == nil || len(o.Directives) > 0 || len(o.SelectionSet) != 1 {
		return nil, false
	}
	f, isField := o.SelectionSet[0].(*ast.Field)
	if !isField || f.Name != "publish" || len(f.Directives) > 0 || len(f.SelectionSet) > 0 {
		return nil, false
	}
	plan = &PublishPlan{op: op}
	plan.op.payload = slices.Clip(op.payload)
	for _, a := range f.Arguments {
		var from *string
		switch a.Name {
		case "resource":
			from = &plan.resource
		case "etag":
			from = &plan.etag
		case "payload":
			from = &plan.payload
		default:
			return nil, false
		}
		switch {
		case a.Value == nil:
			return nil, false
		case a.Value.Kind == ast.Variable:
			*from = a.Value.Raw
		case hasVariable(a.Value):
			return nil, false
		}
	}
	kinds := map[string]planKind{}
	for _, d := range o.VariableDefinitions {
		if d.DefaultValue != nil || len(d.Directives) > 0 || d.Type == nil || d.Type.Elem != nil {
			return nil, false
		}
		var k planKind
		switch {
		case d.Type.NamedType == "String" && d.Type.NonNull:
			k = planString
		case d.Type.NamedType == "JSON" && d.Type.NonNull:
			k = planJSONNonNull
		case d.Type.NamedType == "JSON":
			k = planJSON
		default:
			return nil, false
		}
		kinds[d.Variable] = k
		plan.vars = append(plan.vars, planVar{name: d.Variable, kind: k})
	}
	for _, v := range []struct {
		name string
		json bool
	}{{plan.resource, false}, {plan.etag, false}, {plan.payload, true}} {
		if v.name == "" {
			continue
		}
		k, defined := kinds[v.name]
		if !defined || (k != planString) == !v.json {
			return nil, false
		}
	}
	return plan, true
}

// hasVariable reports whether a literal holds a variable somewhere.
func hasVariable(v *ast.Value) bool {
	if v.Kind == ast.Variable {
		return true
	}
	for _, c := range v.Children {
		if c.Value != nil && hasVariable(c.Value) {
			return true
		}
	}
	return false
}

// Bind reads a request's variables, each the raw JSON the request
// carried, as gqlgen would coerce them and the generated code would read
// them. ok is false whenever that is not certain (a String that is not a
// JSON string, a JSON value whose bytes are not what the encoding of its
// decoded value would be, a variable missing or null where it may not
// be): the request then goes through gqlgen, which gives its own answer.
// The payload keeps the request's bytes.
func (p *PublishPlan) Bind(vars map[string]json.RawMessage) (op PublishOp, ok bool) {
	op = p.op
	if p.payload == "" && op.payload != nil {
		op.payload = bytes.Clone(op.payload) // a literal: one copy per publish, as ParsePublishOp makes
	}
	for _, v := range p.vars {
		raw, present := vars[v.name]
		isNull := !present || string(raw) == "null"
		switch v.kind {
		case planString:
			if isNull {
				return PublishOp{}, false
			}
			s, ok := jsonString(raw)
			if !ok {
				return PublishOp{}, false
			}
			if p.resource == v.name {
				op.resource = s
			}
			if p.etag == v.name {
				op.etag = s
			}
		case planJSON, planJSONNonNull:
			var payload model.JSON
			switch {
			case isNull && v.kind == planJSONNonNull:
				return PublishOp{}, false
			case !isNull:
				if !canonicalJSON(raw) {
					return PublishOp{}, false
				}
				payload = model.JSON(bytes.Clone(raw)) // raw may hold on to the request's body
			}
			if p.payload == v.name {
				op.payload = payload
			}
		}
	}
	return op, true
}

// jsonString returns the string a JSON string literal decodes to.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	if bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return string(in), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// canonicalJSON reports whether raw, a JSON value other than null that
// encoding/json has accepted, is byte for byte what model.JSON.UnmarshalGQL makes of it once
// decoded with numbers kept exact: no whitespace; object keys in
// increasing byte order, none twice (the encoder sorts a map's keys);
// strings with nothing the encoder escapes or replaces (a backslash, a
// control character, invalid UTF-8, U+2028, U+2029); no value nested
// deeper than model.MaxJSONDepth. Numbers are written as they came.
func canonicalJSON(raw []byte) bool {
	c := canon{b: raw}
	return c.value(0) && c.i == len(raw)
}

// canon scans a JSON value for canonicalJSON.
type canon struct {
	b []byte
	i int
}

func (c *canon) value(depth int) bool {
	if depth > model.MaxJSONDepth || c.i >= len(c.b) {
		return false
	}
	switch ch := c.b[c.i]; {
	case ch == '{':
		c.i++
		if c.eat('}') {
			return true
		}
		var prev []byte
		for first := true; ; first = false {
			k, ok := c.str()
			if !ok || (!first && bytes.Compare(prev, k) >= 0) || !c.eat(':') || !c.value(depth+1) {
				return false
			}
			prev = k
			if !c.eat(',') {
				return c.eat('}')
			}
		}
	case ch == '[':
		c.i++
		if c.eat(']') {
			return true
		}
		for {
			if !c.value(depth + 1) {
				return false
			}
			if !c.eat(',') {
				return c.eat(']')
			}
		}
	case ch == '"':
		_, ok := c.str()
		return ok
	case ch == 't':
		return c.word("true")
	case ch == 'f':
		return c.word("false")
	case ch == 'n':
		return c.word("null")
	case ch == '-' || ('0' <= ch && ch <= '9'):
		start := c.i
		for c.i < len(c.b) && strings.IndexByte("+-.eE0123456789", c.b[c.i]) >= 0 {
			c.i++
		}
		return c.i > start
	}
	return false
}

// str scans a string and returns its bytes between the quotes.
func (c *canon) str() ([]byte, bool) {
	if !c.eat('"') {
		return nil, false
	}
	start := c.i
	for c.i < len(c.b) {
		ch := c.b[c.i]
		switch {
		case ch == '"':
			c.i++
			return c.b[start : c.i-1], true
		case ch == '\\' || ch < 0x20:
			return nil, false
		case ch < utf8.RuneSelf:
			c.i++
		default:
			r, n := utf8.DecodeRune(c.b[c.i:])
			if (r == utf8.RuneError && n == 1) || r == '\u2028' || r == '\u2029' {
				return nil, false
			}
			c.i += n
		}
	}
	return nil, false
}

func (c *canon) eat(ch byte) bool {
	if c.i < len(c.b) && c.b[c.i] == ch {
		c.i++
		return true
	}
	return false
}

func (c *canon) word(w string) bool {
	if !bytes.HasPrefix(c.b[c.i:], []byte(w)) {
		return false
	}
	c.i += len(w)
	return true
}
