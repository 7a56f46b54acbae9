package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"meshgate/graph"
	"meshgate/shard"
)

const (
	mediaGraphQLResponse = "application/graphql-response+json"
	mediaJSON            = "application/json"
	mediaEventStream     = "text/event-stream"
	mediaMultipart       = "multipart/mixed"
)

// requestError is a request the server refuses before GraphQL runs.
type requestError struct {
	status int
	code   string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// serveHTTP is GraphQL over HTTP (POST and GET) as the GraphQL-over-HTTP
// spec says: application/graphql-response+json gets 4xx for requests that
// fail before execution, application/json gets 200 for well-formed ones.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeRequestError(w, mediaJSON, &requestError{http.StatusMethodNotAllowed, graph.CodeBadRequest, "use GET or POST"})
		return
	}
	media, ok := negotiate(r.Header.Get("Accept"), jsonOffers...)
	if !ok {
		writeRequestError(w, mediaJSON, &requestError{http.StatusNotAcceptable, graph.CodeBadRequest, "accept application/graphql-response+json or application/json"})
		return
	}
	p, rerr := s.authenticate(r, nil)
	if rerr != nil {
		refuseUnread(w, r)
		refuseToken(w, media, rerr)
		return
	}
	if !s.guard.allowRequest(p.User) {
		refuseUnread(w, r)
		tooMany(w, media, "too many requests: slow down")
		return
	}
	var params *graphql.RawParams
	if r.Method == http.MethodPost {
		body, rerr := s.readBody(w, r)
		if rerr != nil {
			writeRequestError(w, media, rerr)
			return
		}
		if s.answerPlanned(w, r, media, p, body) {
			return
		}
		params, rerr = s.paramsFromBody(r, body)
		if rerr != nil {
			writeRequestError(w, media, rerr)
			return
		}
	} else {
		var rerr *requestError
		if params, rerr = s.readParams(w, r); rerr != nil {
			writeRequestError(w, media, rerr)
			return
		}
	}
	ctx, opCtx, errBody := s.operationContext(r.Context(), p, params)
	if errBody != nil {
		writeOperationErrors(w, media, errBody)
		return
	}
	s.answerJSON(ctx, w, r, media, opCtx)
}

// writeOperationErrors answers a request that failed parse or validation:
// 400 for application/graphql-response+json, 200 for application/json.
func writeOperationErrors(w http.ResponseWriter, media string, body []byte) {
	status := http.StatusOK
	if media == mediaGraphQLResponse {
		status = http.StatusBadRequest
	}
	writeBody(w, media, status, body)
}

// answerJSON runs a validated query or mutation and writes its one result.
func (s *Server) answerJSON(ctx context.Context, w http.ResponseWriter, r *http.Request, media string, opCtx *graphql.OperationContext) {
	switch opCtx.Operation.Operation {
	case ast.Mutation:
		if r.Method == http.MethodGet {
			w.Header().Set("Allow", "POST")
			writeRequestError(w, media, &requestError{http.StatusMethodNotAllowed, graph.CodeBadRequest, "GET cannot run a mutation; use POST"})
			return
		}
	case ast.Subscription:
		writeRequestError(w, media, &requestError{http.StatusBadRequest, graph.CodeBadRequest,
			"subscriptions need a stream: use WebSocket (graphql-transport-ws), SSE (Accept: text/event-stream) or multipart (Accept: multipart/mixed;subscriptionSpec=1.0)"})
		return
	}
	var resp *graphql.Response
	var body [][]byte
	if op, ok := graph.ParsePublishOp(opCtx); ok && !s.slowPublish {
		// The common write: answered without gqlgen's execution, exactly
		// as it would answer (graph.ExecPublish); the next request with
		// this document skips gqlgen altogether (answerPlanned).
		s.plans.learn(opCtx, op)
		resp = s.resolver.ExecPublish(ctx, op, s.present, s.recov)
	} else if op, ok := graph.ParsePollOp(opCtx); ok && !s.slowPoll {
		// The common read, a poll: its page encoded from the
		// notifications' shared encodings (graph.ExecPoll), as gqlgen
		// would answer.
		resp = s.resolver.ExecPoll(ctx, op, s.present, s.recov)
		if len(resp.Errors) == 0 {
			// A page is written as encoded: json.Marshal would copy it
			// unchanged (graph.ExecPoll), after scanning every byte.
			body = [][]byte{[]byte(`{"data":`), resp.Data, []byte("}")}
		}
	} else if setup, ok := graph.ParseSetupOp(opCtx); ok && !s.slowSetup {
		resp = s.resolver.ExecSetup(ctx, setup, s.present, s.recov) // as on WebSocket (ws.go)
	} else {
		var responses graphql.ResponseHandler
		responses, ctx = s.exec.DispatchOperation(ctx, opCtx)
		resp = responses(ctx)
	}
	s.writeResult(ctx, w, media, resp, body)
}

// writeResult writes the result of a query or mutation: body when it is
// already encoded, else resp as JSON.
func (s *Server) writeResult(ctx context.Context, w http.ResponseWriter, media string, resp *graphql.Response, body [][]byte) {
	if body == nil {
		b, err := json.Marshal(resp)
		if err != nil {
			s.log.ErrorContext(ctx, "marshal response", "err", err)
			writeRequestError(w, media, &requestError{http.StatusInternalServerError, graph.CodeInternal, "internal error"})
			return
		}
		body = [][]byte{b}
	}
	if retryable(resp) {
		// GraphQL over HTTP keeps the status 200 for a result with
		// errors; the header still tells a client or a proxy when to
		// try again (README, "Error codes").
		w.Header().Set("Retry-After", "1")
	}
	writeBody(w, media, http.StatusOK, body...)
}

// retryable reports whether a result carries an UNAVAILABLE error: the
// membership moved or a peer or publisher could not be reached.
func retryable(resp *graphql.Response) bool {
	for _, e := range resp.Errors {
		if e.Extensions["code"] == graph.CodeUnavailable {
			return true
		}
	}
	return false
}

// negotiate picks the response media type from Accept as RFC 9110
// (section 12.5.1) says: each offer takes the q of the most specific range
// that matches it, q=0 excludes it, the highest q wins and a tie goes to
// the range the client listed first (then to the order of offers, which
// is what a wildcard gets). No Accept means the first offer.
func negotiate(accept string, offers ...offer) (string, bool) {
	if strings.TrimSpace(accept) == "" {
		return offers[0].media, true
	}
	ranges := parseAccept(accept)
	best, bestQ, bestPos := "", 0.0, 0
	for _, o := range offers {
		q, pos, spec := 0.0, 0, -1
		for i, r := range ranges {
			if sp := o.match(r); sp > spec {
				q, pos, spec = r.q, i, sp
			}
		}
		if spec < 0 || q <= 0 {
			continue
		}
		if best == "" || q > bestQ || (q == bestQ && pos < bestPos) {
			best, bestQ, bestPos = o.media, q, pos
		}
	}
	return best, best != ""
}

// offer is a media type the server can answer with. param, when set, is
// a parameter ("subscriptionspec=1.0") the client must name for it: Apollo's
// multipart subscriptions are not what a bare multipart/mixed asks for.
type offer struct {
	media string
	param string
}

var (
	offerJSON            = offer{media: mediaJSON}
	offerGraphQLResponse = offer{media: mediaGraphQLResponse}
	offerEventStream     = offer{media: mediaEventStream}
	offerMultipart       = offer{media: mediaMultipart, param: "subscriptionspec=1.0"}
	// jsonOffers are the plain HTTP answers; */* gets application/json,
	// which every client understands.
	jsonOffers = []offer{offerJSON, offerGraphQLResponse}
	allOffers  = []offer{offerJSON, offerGraphQLResponse, offerEventStream, offerMultipart}
)

// match returns how specifically r names o (3 with a required parameter,
// 2 exact, 1 type/*, 0 */*), or -1 when it does not.
func (o offer) match(r mediaRange) int {
	typ, sub, _ := strings.Cut(o.media, "/")
	switch {
	case o.param != "":
		k, v, _ := strings.Cut(o.param, "=")
		if r.typ == typ && r.sub == sub && r.params[k] == v {
			return 3
		}
		return -1
	case r.typ == typ && r.sub == sub:
		return 2
	case r.typ == typ && r.sub == "*":
		return 1
	case r.typ == "*" && r.sub == "*":
		return 0
	}
	return -1
}

// mediaRange is one element of an Accept header.
type mediaRange struct {
	typ, sub string
	params   map[string]string // names lowercased, q removed
	q        float64
}

// parseAccept reads an Accept header, skipping elements that do not parse.
func parseAccept(accept string) []mediaRange {
	var out []mediaRange
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		typ, sub, ok := strings.Cut(mt, "/")
		if !ok {
			continue
		}
		r := mediaRange{typ: typ, sub: sub, params: params, q: 1}
		if v, ok := params["q"]; ok {
			q, err := strconv.ParseFloat(v, 64)
			if err != nil || q < 0 || q > 1 {
				continue
			}
			r.q = q
			delete(params, "q")
		}
		out = append(out, r)
	}
	return out
}

// readParams decodes a GraphQL request from a POST body or GET query.
func (s *Server) readParams(w http.ResponseWriter, r *http.Request) (*graphql.RawParams, *requestError) {
	if r.Method != http.MethodGet {
		body, rerr := s.readBody(w, r)
		if rerr != nil {
			return nil, rerr
		}
		return s.paramsFromBody(r, body)
	}
	params := &graphql.RawParams{Headers: r.Header, ReadTime: graphql.TraceTiming{Start: graphql.Now()}}
	q := r.URL.Query()
	params.Query = q.Get("query")
	params.OperationName = q.Get("operationName")
	if v := q.Get("variables"); v != "" {
		if err := decodeObject([]byte(v), &params.Variables); err != nil {
			return nil, badRequest("variables: %v", err)
		}
	}
	if v := q.Get("extensions"); v != "" {
		if err := decodeObject([]byte(v), &params.Extensions); err != nil {
			return nil, badRequest("extensions: %v", err)
		}
	}
	return s.checkQuery(params)
}

// readBody reads a POST body, which must be JSON.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *requestError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != mediaJSON {
		return nil, &requestError{http.StatusUnsupportedMediaType, graph.CodeBadRequest, "send the request as Content-Type: application/json"}
	}
	// The body has BodyTimeout to arrive; the deadline is lifted
	// once it is in, so a stream that follows is not cut.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(s.cfg.Now().Add(s.cfg.BodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err == nil {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.Is(err, os.ErrDeadlineExceeded) {
			refuseUnread(w, r)
			return nil, &requestError{http.StatusRequestTimeout, graph.CodeBadRequest, fmt.Sprintf("the body did not arrive within %s", s.cfg.BodyTimeout)}
		}
		if errors.As(err, &tooBig) {
			return nil, &requestError{http.StatusRequestEntityTooLarge, graph.CodeLimitExceeded, fmt.Sprintf("request body is larger than %d bytes", s.cfg.MaxBodyBytes)}
		}
		return nil, badRequest("reading the body: %v", err)
	}
	return body, nil
}

// paramsFromBody decodes a POST body read by readBody.
func (s *Server) paramsFromBody(r *http.Request, body []byte) (*graphql.RawParams, *requestError) {
	params := &graphql.RawParams{Headers: r.Header, ReadTime: graphql.TraceTiming{Start: graphql.Now()}}
	if rerr := decodeRequest(body, params); rerr != nil {
		return nil, rerr
	}
	return s.checkQuery(params)
}

// checkQuery refuses a request without a query or with one over the limit.
func (s *Server) checkQuery(params *graphql.RawParams) (*graphql.RawParams, *requestError) {
	if strings.TrimSpace(params.Query) == "" {
		return nil, badRequest("the request has no query")
	}
	if len(params.Query) > s.cfg.MaxQueryBytes {
		return nil, &requestError{http.StatusRequestEntityTooLarge, graph.CodeLimitExceeded, fmt.Sprintf("query is longer than %d bytes", s.cfg.MaxQueryBytes)}
	}
	params.ReadTime.End = graphql.Now()
	return params, nil
}

// wireRequest is the JSON shape of a GraphQL request. Variables and
// extensions are decoded in the same pass as the rest (numbers kept
// exact), then checked to be objects: one pass of encoding/json instead
// of two was a third of the decoding of a publish.
type wireRequest struct {
	Query         *string `json:"query"`
	OperationName *string `json:"operationName"`
	Variables     any     `json:"variables"`
	Extensions    any     `json:"extensions"`
}

// decodeRequest parses a GraphQL request body strictly: query a string,
// operationName a string or null, variables and extensions objects or
// null. The body is never echoed back.
func decodeRequest(body []byte, params *graphql.RawParams) *requestError {
	var req wireRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return badRequest("the body is not a JSON GraphQL request: %v", jsonErr(err))
	}
	if dec.More() {
		return badRequest("the body has data after the JSON object")
	}
	if req.Query == nil {
		return badRequest("the request has no query")
	}
	params.Query = *req.Query
	if req.OperationName != nil {
		params.OperationName = *req.OperationName
	}
	var ok bool
	if params.Variables, ok = asObject(req.Variables); !ok {
		return badRequest("variables: must be a JSON object")
	}
	if params.Extensions, ok = asObject(req.Extensions); !ok {
		return badRequest("extensions: must be a JSON object")
	}
	return nil
}

// asObject accepts a decoded JSON object, or null (nil).
func asObject(v any) (map[string]any, bool) {
	if v == nil {
		return nil, true
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// jsonErr describes a decoding error without quoting the input.
func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s must be %s", te.Field, te.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	return "malformed JSON"
}

// decodeObject decodes a JSON object (or null or nothing) with numbers kept exact.
func decodeObject(raw []byte, dst *map[string]any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] != '{' {
		return errors.New("must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return errors.New(jsonErr(err))
	}
	return nil
}

func badRequest(format string, args ...any) *requestError {
	return &requestError{http.StatusBadRequest, graph.CodeBadRequest, fmt.Sprintf(format, args...)}
}

// refuseUnread prepares the refusal of a request whose body has not been
// read: the connection closes after the answer, and its read deadline is
// now, so net/http neither drains the body before answering nor after
// (it would, up to 256 KiB, as slowly as the client likes): a refused
// client holds nothing once it has its answer.
func refuseUnread(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 && r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
}

// authenticate reads the bearer token from the Authorization header, or
// from extensions.authorization (SSE from a browser EventSource, which
// cannot set headers).
func (s *Server) authenticate(r *http.Request, ext map[string]any) (shard.Principal, *requestError) {
	p, _, rerr := s.authenticateExp(r, ext)
	return p, rerr
}

// authenticateExp is authenticate that also returns the token's expiry,
// for streams that must end with it.
func (s *Server) authenticateExp(r *http.Request, ext map[string]any) (shard.Principal, time.Time, *requestError) {
	tok := r.Header.Get("Authorization")
	if tok == "" && ext != nil {
		tok, _ = ext["authorization"].(string)
	}
	if tok == "" {
		return shard.Principal{}, time.Time{}, &requestError{http.StatusUnauthorized, graph.CodeUnauthenticated, "a bearer token is required"}
	}
	p, exp, err := s.auth.VerifyRequest(tok)
	if err != nil {
		s.log.DebugContext(r.Context(), "token refused", "err", err, "remote", r.RemoteAddr)
		return shard.Principal{}, time.Time{}, &requestError{http.StatusUnauthorized, graph.CodeUnauthenticated, "the bearer token is invalid or expired"}
	}
	return p, exp, nil
}

// refuseToken answers a request whose bearer token is missing or refused:
// 401 with the RFC 6750 challenge, and the typed error in the body.
func refuseToken(w http.ResponseWriter, media string, e *requestError) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="meshgate"`)
	writeRequestError(w, media, e)
}

// requireAdmin serves h only to a principal with the admin scope: without
// a valid token 401 (refuseToken), without the scope 403 FORBIDDEN with
// the message refusal.
func (s *Server) requireAdmin(refusal string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, rerr := s.authenticate(r, nil)
		if rerr != nil {
			refuseToken(w, mediaJSON, rerr)
			return
		}
		if !p.Has(shard.ScopeAdmin) {
			writeRequestError(w, mediaJSON, &requestError{http.StatusForbidden, graph.CodeForbidden, refusal})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeRequestError(w http.ResponseWriter, media string, e *requestError) {
	writeBody(w, media, e.status, marshalErrors(gqlerror.List{{Message: e.msg, Extensions: map[string]any{"code": e.code}}}))
}

func marshalErrors(errs gqlerror.List) []byte {
	b, _ := json.Marshal(struct {
		Errors gqlerror.List `json:"errors"`
	}{errs})
	return b
}

// writeBody answers with the concatenation of body's parts. Its length
// is sent: without it net/http chunks any body over 2 KiB.
func writeBody(w http.ResponseWriter, media string, status int, body ...[]byte) {
	n := 0
	for _, b := range body {
		n += len(b)
	}
	w.Header().Set("Content-Type", media+"; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(status)
	for _, b := range body {
		_, _ = w.Write(b)
	}
}
