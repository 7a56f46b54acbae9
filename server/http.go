package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
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
	media, ok := negotiate(r.Header.Get("Accept"))
	if !ok {
		writeRequestError(w, mediaJSON, &requestError{http.StatusNotAcceptable, graph.CodeBadRequest, "accept application/graphql-response+json or application/json"})
		return
	}
	p, rerr := s.authenticate(r, nil)
	if rerr != nil {
		refuseToken(w, media, rerr)
		return
	}
	if !s.guard.allowRequest(p.User) {
		tooMany(w, media, "too many requests: slow down")
		return
	}
	params, rerr := s.readParams(w, r)
	if rerr != nil {
		writeRequestError(w, media, rerr)
		return
	}
	ctx, opCtx, errBody := s.operationContext(r.Context(), p, params)
	if errBody != nil {
		status := http.StatusOK
		if media == mediaGraphQLResponse {
			status = http.StatusBadRequest
		}
		writeBody(w, media, status, errBody)
		return
	}
	switch opCtx.Operation.Operation {
	case ast.Mutation:
		if r.Method == http.MethodGet {
			w.Header().Set("Allow", "POST")
			writeRequestError(w, media, &requestError{http.StatusMethodNotAllowed, graph.CodeBadRequest, "GET cannot run a mutation; use POST"})
			return
		}
	case ast.Subscription:
		writeRequestError(w, media, &requestError{http.StatusBadRequest, graph.CodeBadRequest,
			"subscriptions need a stream: use WebSocket (graphql-transport-ws) or SSE (Accept: text/event-stream)"})
		return
	}
	var resp *graphql.Response
	if op, ok := graph.ParsePublishOp(opCtx); ok && !s.slowPublish {
		// The common write: answered without gqlgen's execution, exactly
		// as it would answer (graph.ExecPublish).
		resp = s.resolver.ExecPublish(ctx, op, s.present, s.recov)
	} else {
		var responses graphql.ResponseHandler
		responses, ctx = s.exec.DispatchOperation(ctx, opCtx)
		resp = responses(ctx)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		s.log.ErrorContext(ctx, "marshal response", "err", err)
		writeRequestError(w, media, &requestError{http.StatusInternalServerError, graph.CodeInternal, "internal error"})
		return
	}
	writeBody(w, media, http.StatusOK, b)
}

// negotiate picks the response media type from Accept. No Accept, */* and
// application/* get application/json, which every client understands.
func negotiate(accept string) (string, bool) {
	if strings.TrimSpace(accept) == "" {
		return mediaJSON, true
	}
	json := false
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case mediaGraphQLResponse:
			return mediaGraphQLResponse, true
		case mediaJSON, "*/*", "application/*":
			json = true
		}
	}
	return mediaJSON, json
}

// readParams decodes a GraphQL request from a POST body or GET query.
func (s *Server) readParams(w http.ResponseWriter, r *http.Request) (*graphql.RawParams, *requestError) {
	params := &graphql.RawParams{Headers: r.Header, ReadTime: graphql.TraceTiming{Start: graphql.Now()}}
	if r.Method == http.MethodGet {
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
	} else {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != mediaJSON {
			return nil, &requestError{http.StatusUnsupportedMediaType, graph.CodeBadRequest, "send the request as Content-Type: application/json"}
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, &requestError{http.StatusRequestEntityTooLarge, graph.CodeLimitExceeded, fmt.Sprintf("request body is larger than %d bytes", s.cfg.MaxBodyBytes)}
			}
			return nil, badRequest("reading the body: %v", err)
		}
		if rerr := decodeRequest(body, params); rerr != nil {
			return nil, rerr
		}
	}
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

func writeBody(w http.ResponseWriter, media string, status int, body []byte) {
	w.Header().Set("Content-Type", media+"; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
