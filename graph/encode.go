package graph

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"meshgate/graph/model"
	"meshgate/shard"
)

// StreamOp is a `notifications` subscription that a streaming transport
// serves itself instead of asking gqlgen to execute it per event: gqlgen
// would run the whole selection and marshal JSON anew for every subscriber
// and every event (about 9 µs and 110 allocations each), while Plan encodes
// each event once per distinct selection and splices in each queue's seq.
type StreamOp struct {
	Queue string
	After uint64
	Plan  *Plan
}

// ParseStreamOp recognises a validated operation that is the
// `notifications` subscription and compiles its selection. ok is false for
// any other operation, which then goes through gqlgen as usual. err reports
// bad arguments (as a GraphQL error with a code).
func ParseStreamOp(opCtx *graphql.OperationContext) (op StreamOp, ok bool, err error) {
	if opCtx.Operation == nil || opCtx.Operation.Operation != ast.Subscription {
		return StreamOp{}, false, nil
	}
	root := graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Subscription"})
	if len(root) != 1 || root[0].Name != "notifications" {
		return StreamOp{}, false, nil
	}
	f := root[0]
	args := f.ArgumentMap(opCtx.Variables)
	queue, _ := args["queue"].(string)
	var after model.Seq
	if v := args["after"]; v != nil {
		if err := after.UnmarshalGQL(v); err != nil {
			return StreamOp{}, true, fmt.Errorf("%w: after: %v", shard.ErrInvalidInput, err) //nolint:errorlint // the sentinel is the contract; the parse error is only text
		}
	}
	return StreamOp{Queue: queue, After: uint64(after), Plan: compile(opCtx, f)}, true, nil
}

// Plan is the compiled selection of one `notifications` subscription.
// Plans with the same selection are interned, so the encoding of an event
// is shared by every subscriber that asked for the same fields.
type Plan struct {
	key    string
	alias  string
	fields []planField
	bare   bool // a poll page's item: the Notification object alone
}

type planField struct {
	alias, name string
	sub         []planField // for `from`
}

var plans struct {
	sync.Mutex
	m map[string]*Plan
}

// maxPlans bounds the intern table; beyond it plans are not shared, which
// costs speed, not correctness.
const maxPlans = 4096

func compile(opCtx *graphql.OperationContext, root graphql.CollectedField) *Plan {
	p := &Plan{alias: root.Alias}
	p.fields = collect(opCtx, root.Selections, "Notification")
	p.key = root.Alias + "{" + planKey(p.fields) + "}"
	return intern(p)
}

// compileItem compiles the selection of a poll page's `items`: each
// item is encoded as the Notification object alone, without the
// {"data":...} around a streamed event, and interned apart from those.
func compileItem(opCtx *graphql.OperationContext, items graphql.CollectedField) *Plan {
	p := &Plan{bare: true}
	p.fields = collect(opCtx, items.Selections, "Notification")
	p.key = "[]{" + planKey(p.fields) + "}" // no alias of a stream plan starts with '['
	return intern(p)
}

func intern(p *Plan) *Plan {
	plans.Lock()
	defer plans.Unlock()
	if shared, ok := plans.m[p.key]; ok {
		return shared
	}
	if plans.m == nil {
		plans.m = make(map[string]*Plan)
	}
	if len(plans.m) < maxPlans {
		plans.m[p.key] = p
	}
	return p
}

func collect(opCtx *graphql.OperationContext, sel ast.SelectionSet, typ string) []planField {
	var out []planField
	for _, f := range graphql.CollectFields(opCtx, sel, []string{typ}) {
		pf := planField{alias: f.Alias, name: f.Name}
		if f.Name == "from" {
			pf.sub = collect(opCtx, f.Selections, "Principal")
		}
		out = append(out, pf)
	}
	return out
}

func planKey(fs []planField) string {
	var b []byte
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f.alias...)
		if f.alias != f.name {
			b = append(b, ':')
			b = append(b, f.name...)
		}
		if f.sub != nil {
			b = append(b, '{')
			b = append(b, planKey(f.sub)...)
			b = append(b, '}')
		}
	}
	return string(b)
}

// Encoded is an event's response payload for one plan: the
// {"data":{...}} object with holes where the seq goes.
type Encoded struct {
	parts [][]byte // seq goes between consecutive parts
}

// Append writes the payload for seq to dst.
func (e *Encoded) Append(dst []byte, seq uint64) []byte {
	for i, p := range e.parts {
		if i > 0 {
			dst = strconv.AppendUint(dst, seq, 10)
		}
		dst = append(dst, p...)
	}
	return dst
}

// Encode returns n's payload for this plan, encoding n's event at most once
// per plan however many queues it sits in.
func (p *Plan) Encode(dst []byte, n shard.Notification) []byte {
	enc := n.Memo(p, func() any { return p.encode(n.Event) }).(*Encoded)
	return enc.Append(dst, n.Seq)
}

func (p *Plan) encode(ev *shard.Event) *Encoded {
	e := &Encoded{}
	cur := make([]byte, 0, 128+len(ev.Payload))
	if p.bare {
		cur = append(cur, '{')
	} else {
		cur = append(cur, `{"data":{`...)
		cur = appendString(cur, p.alias)
		cur = append(cur, ":{"...)
	}
	for i, f := range p.fields {
		if i > 0 {
			cur = append(cur, ',')
		}
		cur = appendString(cur, f.alias)
		cur = append(cur, ':')
		switch f.name {
		case "seq":
			e.parts = append(e.parts, cur)
			cur = nil
		case "__typename":
			cur = append(cur, `"Notification"`...)
		case "kind":
			cur = appendString(cur, ev.Kind.String())
		case "resource":
			cur = appendOptString(cur, ev.Resource)
		case "etag":
			if ev.Resource == "" {
				cur = append(cur, "null"...)
			} else {
				cur = appendString(cur, ev.Etag)
			}
		case "etagUnknown":
			cur = strconv.AppendBool(cur, ev.EtagUnknown)
		case "publishedAt":
			cur = appendString(cur, ev.Time.UTC().Format(time.RFC3339Nano))
		case "payload":
			switch {
			case len(ev.Payload) == 0:
				cur = append(cur, "null"...)
			case p.bare:
				cur = appendCanonical(cur, ev.Payload)
			default:
				cur = append(cur, ev.Payload...)
			}
		case "from":
			cur = appendFrom(cur, ev.From, f.sub)
		default:
			cur = append(cur, "null"...) // unreachable after validation
		}
	}
	if p.bare {
		cur = append(cur, '}')
	} else {
		cur = append(cur, "}}}"...)
	}
	e.parts = append(e.parts, cur)
	return e
}

func appendFrom(b []byte, from *shard.Principal, fs []planField) []byte {
	if from == nil {
		return append(b, "null"...)
	}
	b = append(b, '{')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, f.alias)
		b = append(b, ':')
		switch f.name {
		case "__typename":
			b = append(b, `"Principal"`...)
		case "user":
			b = appendString(b, from.User)
		case "device":
			b = appendString(b, from.Device)
		case "scopes":
			b = append(b, "[]"...)
		default:
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}

func appendOptString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendString(b, s)
}

// appendCanonical writes the JSON value v as json.Marshal writes a
// json.RawMessage: compacted, with <, > and & escaped. A poll page is
// written without passing through json.Marshal again (graph.ExecPoll), so
// it must already be what json.Marshal would make of it. v is valid JSON
// (every path that makes an event checks its payload).
func appendCanonical(b, v []byte) []byte {
	j, err := json.Marshal(json.RawMessage(v))
	if err != nil {
		return append(b, v...)
	}
	return append(b, j...)
}

// appendString writes s as a JSON string, as json.Marshal does (HTML
// characters escaped).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			j, _ := json.Marshal(s) // rare: escapes and non-ASCII
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
