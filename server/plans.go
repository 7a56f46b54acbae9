package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

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
// validation, limits or execution and without decoding the body into Go
// values: the payload keeps the bytes it came as. It answers exactly as
// answerJSON would, or reports false (nothing written) when it cannot be
// sure (scanPlanned, graph.PublishPlan.Bind), and the request goes
// through decodeRequest and gqlgen.
func (s *Server) answerPlanned(w http.ResponseWriter, r *http.Request, media string, p shard.Principal, body []byte) bool {
	if s.slowPublish {
		return false
	}
	req, ok := scanPlanned(body)
	if !ok {
		return false
	}
	plan, ok := s.plans.get(req.query, req.operationName)
	if !ok {
		return false
	}
	op, ok := plan.Bind(req.vars)
	if !ok {
		return false
	}
	s.plans.answered.Add(1)
	ctx := graphql.StartOperationTrace(graph.WithPrincipal(r.Context(), p)) // as operationContext
	resp := s.resolver.ExecPublish(ctx, op, s.present, s.recov)
	var out [][]byte
	if len(resp.Errors) == 0 {
		// What json.Marshal makes of {"data":{"<alias>":n}}, without
		// its scan: a name and a number have nothing to escape.
		out = [][]byte{[]byte(`{"data":`), resp.Data, []byte("}")}
	}
	s.writeResult(ctx, w, media, resp, out)
	return true
}

// plannedRequest is what scanPlanned reads of a body.
type plannedRequest struct {
	query, operationName string
	vars                 map[string]json.RawMessage // raw values, in body
}

// scanPlanned reads a request body as decodeRequest would, for a request
// answerPlanned may answer, without encoding/json's reflection (it was a
// tenth of a publish's CPU). ok is false whenever the two readings might
// differ, and then the body goes through decodeRequest: a body that is
// not valid JSON or not an object; a key with an escape, a non-ASCII byte,
// or one of the request's names in another case (encoding/json matches
// names without regard to case); a name twice; a query or operationName
// that is not a string (or null, for operationName), or with a \u escape
// or invalid UTF-8 (decoded as U+FFFD); variables that are neither an
// object nor null, or whose names have an escape or a non-ASCII byte;
// extensions that are not absent or null. A variable's value is its raw
// JSON (a variable named twice: the last, as a decoded map has it).
func scanPlanned(body []byte) (req plannedRequest, ok bool) {
	if !json.Valid(body) {
		return req, false
	}
	sc := jscan{b: body}
	sc.space()
	if !sc.eat('{') {
		return req, false
	}
	var seen, hasQuery, hasOp, hasVars, hasExt bool
	sc.space()
	if sc.eat('}') {
		return req, false // no query
	}
	for {
		sc.space()
		key, ok := sc.plainString()
		if !ok {
			return req, false
		}
		sc.space()
		sc.eat(':')
		sc.space()
		switch key {
		case "query":
			seen, hasQuery = hasQuery, true
			if req.query, ok = sc.stringValue(); !ok {
				return req, false
			}
		case "operationName":
			seen, hasOp = hasOp, true
			if !sc.word("null") {
				if req.operationName, ok = sc.stringValue(); !ok {
					return req, false
				}
			}
		case "variables":
			seen, hasVars = hasVars, true
			if !sc.word("null") {
				if req.vars, ok = sc.object(); !ok {
					return req, false
				}
			}
		case "extensions":
			seen, hasExt = hasExt, true
			if !sc.word("null") {
				return req, false // answerPlanned needs none
			}
		default:
			for _, name := range []string{"query", "operationName", "variables", "extensions"} {
				if strings.EqualFold(key, name) {
					return req, false
				}
			}
			sc.skip()
		}
		if seen {
			return req, false
		}
		sc.space()
		if !sc.eat(',') {
			break
		}
	}
	return req, hasQuery && sc.eat('}')
}

// jscan reads JSON that json.Valid has accepted.
type jscan struct {
	b []byte
	i int
}

func (s *jscan) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *jscan) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *jscan) word(w string) bool {
	if strings.HasPrefix(string(s.b[s.i:min(len(s.b), s.i+len(w))]), w) {
		s.i += len(w)
		return true
	}
	return false
}

// plainString reads a string of printable ASCII without escapes.
func (s *jscan) plainString() (string, bool) {
	if !s.eat('"') {
		return "", false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return string(s.b[start : s.i-1]), true
		case c == '\\' || c >= utf8.RuneSelf:
			return "", false
		}
	}
	return "", false
}

// stringValue reads a string as encoding/json decodes it, refusing \u
// escapes and invalid UTF-8.
func (s *jscan) stringValue() (string, bool) {
	if !s.eat('"') {
		return "", false
	}
	start := s.i
	var out []byte // nil until an escape
	for ; s.i < len(s.b); s.i++ {
		c := s.b[s.i]
		switch c {
		case '"':
			seg := s.b[start:s.i]
			s.i++
			if out != nil {
				seg = append(out, seg...)
			}
			if !utf8.Valid(seg) {
				return "", false
			}
			return string(seg), true
		case '\\':
			out = append(out, s.b[start:s.i]...)
			s.i++
			switch s.b[s.i] {
			case '"', '\\', '/':
				out = append(out, s.b[s.i])
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			default: // \u
				return "", false
			}
			start = s.i + 1
		}
	}
	return "", false
}

// object reads an object of plain names to raw values.
func (s *jscan) object() (map[string]json.RawMessage, bool) {
	if !s.eat('{') {
		return nil, false
	}
	m := make(map[string]json.RawMessage, 4)
	s.space()
	if s.eat('}') {
		return m, true
	}
	for {
		s.space()
		k, ok := s.plainString()
		if !ok {
			return nil, false
		}
		s.space()
		s.eat(':')
		s.space()
		start := s.i
		s.skip()
		m[k] = s.b[start:s.i]
		s.space()
		if !s.eat(',') {
			return m, s.eat('}')
		}
	}
}

// skip steps over one value.
func (s *jscan) skip() {
	depth := 0
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch c {
		case '"':
			s.i++
			for s.i < len(s.b) && s.b[s.i] != '"' {
				if s.b[s.i] == '\\' {
					s.i++
				}
				s.i++
			}
			s.i++ // the closing quote
		case '{', '[':
			depth++
			s.i++
		case '}', ']':
			if depth == 0 {
				return // the end of what holds a scalar
			}
			depth--
			s.i++
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return
			}
			s.i++
		default:
			s.i++
		}
		if depth == 0 && (c == '"' || c == '}' || c == ']') {
			return
		}
	}
}
