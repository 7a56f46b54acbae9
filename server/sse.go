package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"meshgate/graph"
	"meshgate/shard"
)

// sseConn is one graphql-sse stream (distinct connections mode). Its
// handler goroutine waits on a one-slot channel that both the queue and the
// shared wheel (keep-alives, token expiry) signal.
type sseConn struct {
	wake      chan struct{}
	multipart bool // Apollo's multipart framing: transport="multipart" in /metrics
	pingDue   atomic.Bool
	expired   atomic.Bool
	expires   time.Time
	every     time.Duration
	last      atomic.Int64 // unix nanoseconds of the last write
}

func (c *sseConn) Notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// goingAway wakes the handler, which sees the base context ended.
func (c *sseConn) goingAway() { c.Notify() }

func (c *sseConn) tick(now time.Time) {
	if now.After(c.expires) {
		c.expired.Store(true)
		c.Notify()
		return
	}
	if now.Sub(time.Unix(0, c.last.Load())) >= c.every {
		c.pingDue.Store(true)
		c.Notify()
	}
}

// framing writes one streaming transport's bytes: graphql-sse's event
// stream or Apollo's multipart subscriptions. Each method appends to dst.
type framing interface {
	contentType() string
	// open is written right after the headers.
	open(dst []byte) []byte
	// result is one execution result; seq, when not 0, is the
	// notification's position in its queue (an SSE event id).
	result(dst []byte, seq uint64, body []byte) []byte
	// heartbeat keeps an idle stream (and the proxies on its way) alive.
	heartbeat(dst []byte) []byte
	// end completes the stream.
	end(dst []byte) []byte
}

// sseFraming is graphql-sse's distinct connections mode. Each
// notification event carries `id: <seq>`, so an EventSource that loses its
// connection resumes by itself with Last-Event-ID.
type sseFraming struct{}

func (sseFraming) contentType() string    { return "text/event-stream; charset=utf-8" }
func (sseFraming) open(dst []byte) []byte { return dst }
func (sseFraming) result(dst []byte, seq uint64, body []byte) []byte {
	if seq != 0 {
		dst = append(dst, "id: "...)
		dst = strconv.AppendUint(dst, seq, 10)
		dst = append(dst, '\n')
	}
	return sseEvent(dst, body)
}
func (sseFraming) heartbeat(dst []byte) []byte { return append(dst, ":\n\n"...) }

// end is graphql-sse's complete event; the empty data line makes a browser
// EventSource dispatch it.
func (sseFraming) end(dst []byte) []byte { return append(dst, "event: complete\ndata:\n\n"...) }

// serveStream serves an operation over a streaming HTTP transport (SSE or
// multipart): GET (usable from EventSource; the token may travel in
// extensions.authorization) or POST. Only a request that cannot be
// authenticated is refused (401); every later error, from a syntax error
// to QUEUE_NOT_FOUND, is a result in an accepted stream (200) followed by
// its end, so that clients see its extensions.code: graphql-sse's
// PROTOCOL.md says validation errors "MUST report errors through an
// accepted SSE connection by emitting `next` events". A query or mutation
// from a client that also accepts JSON (jsonMedia not "") is answered as
// plain JSON instead.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, f framing, jsonMedia string) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeRequestError(w, mediaJSON, &requestError{http.StatusMethodNotAllowed, graph.CodeBadRequest, "use GET or POST"})
		return
	}
	if r.Method == http.MethodPost {
		// A POST authenticates from its headers before its body is read:
		// an unauthenticated client cannot make the server wait on a body.
		// (A GET's token may travel in the URL's extensions.)
		if _, _, aerr := s.authenticateExp(r, nil); aerr != nil {
			refuseUnread(w, r)
			refuseToken(w, mediaJSON, aerr)
			return
		}
	}
	params, rerr := s.readParams(w, r)
	var ext map[string]any
	if params != nil {
		ext = params.Extensions
	}
	p, exp, aerr := s.authenticateExp(r, ext)
	if aerr != nil {
		refuseToken(w, mediaJSON, aerr)
		return
	}
	_, isMultipart := f.(multipartFraming)
	c := &sseConn{wake: make(chan struct{}, 1), multipart: isMultipart, expires: exp, every: s.cfg.SSEKeepAlive}
	rc := http.NewResponseController(w)
	opened := false
	var out []byte
	write := func(b []byte) bool {
		if !opened {
			opened = true
			h := w.Header()
			h.Set("Content-Type", f.contentType())
			h.Set("Cache-Control", "no-cache")
			h.Set("X-Accel-Buffering", "no")
			w.WriteHeader(http.StatusOK)
			b = append(f.open(nil), b...)
		}
		_ = rc.SetWriteDeadline(s.cfg.Now().Add(s.cfg.WS.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		c.last.Store(s.cfg.Now().UnixNano())
		return rc.Flush() == nil
	}
	// fail ends the stream with one error result.
	fail := func(body []byte) {
		out = f.result(out[:0], 0, body)
		write(f.end(out))
	}
	failCode := func(code, msg string) {
		fail(marshalErrors(gqlerror.List{{Message: msg, Extensions: map[string]any{"code": code}}}))
	}
	if rerr != nil {
		failCode(rerr.code, rerr.msg)
		return
	}
	if !s.guard.allowRequest(p.User) {
		failCode(graph.CodeLimitExceeded, "too many requests: slow down")
		return
	}
	ctx, opCtx, errBody := s.operationContext(r.Context(), p, params)
	if jsonMedia != "" && !s.isSubscription(opCtx, params) {
		if errBody != nil {
			writeOperationErrors(w, jsonMedia, errBody)
		} else {
			s.answerJSON(ctx, w, r, jsonMedia, opCtx)
		}
		return
	}
	if errBody != nil {
		fail(errBody)
		return
	}
	if ok, why := s.guard.openConn(p.User); !ok {
		failCode(graph.CodeLimitExceeded, why)
		return
	}
	defer s.guard.closeConn(p.User)
	if r.Method == http.MethodGet && opCtx.Operation.Operation == ast.Mutation {
		failCode(graph.CodeBadRequest, "GET cannot run a mutation; use POST")
		return
	}
	sop, isStream, err := graph.ParseStreamOp(opCtx)
	if err != nil {
		fail(codeResponse(err))
		return
	}
	var st shard.Reader
	if isStream {
		after, err := lastEventID(r)
		if err != nil {
			fail(codeResponse(err))
			return
		}
		// Last-Event-ID is the last seq this client saw, later than the
		// `after` its URL or body still carries: resume from the later.
		st, err = s.node.Attach(ctx, p, sop.Queue, max(sop.After, after), c)
		if err != nil {
			fail(codeResponse(err))
			return
		}
		defer st.Close()
	}
	if !write(nil) {
		return
	}
	s.wheel.add(c)
	defer s.wheel.remove(c)

	if !isStream {
		responses, ctx := s.exec.DispatchOperation(ctx, opCtx)
		for {
			resp := responses(ctx)
			if resp == nil {
				break
			}
			b, err := json.Marshal(resp)
			if err != nil || !write(f.result(out[:0], 0, b)) {
				return
			}
		}
		write(f.end(out[:0]))
		return
	}
	var notes []shard.Notification
	var body []byte
	for {
		notes, err = st.Next(notes[:0], maxPerOp)
		out = out[:0]
		for _, n := range notes {
			body = sop.Plan.Encode(body[:0], n)
			out = f.result(out, n.Seq, body)
		}
		if len(out) > 0 && !write(out) {
			return
		}
		if err != nil {
			fail(codeResponse(err))
			return
		}
		if len(notes) == maxPerOp {
			continue
		}
		select {
		case <-c.wake:
		case <-ctx.Done():
			if s.base.Err() != nil {
				write(f.end(out[:0])) // shutting down: the client reconnects elsewhere with after
			}
			return
		}
		if c.expired.Load() {
			fail(codeResponse(graph.ErrUnauthenticated))
			return
		}
		if c.pingDue.Swap(false) && !write(f.heartbeat(out[:0])) {
			return
		}
	}
}

// lastEventID reads the seq an EventSource saw last: the Last-Event-ID
// header it sends when it reconnects, or the lastEventId query parameter
// that EventSource polyfills use. 0 when there is none.
func lastEventID(r *http.Request) (uint64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("lastEventId")
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: Last-Event-ID must be a notification seq", shard.ErrInvalidInput)
	}
	return n, nil
}

// isSubscription reports whether the request's operation is a
// subscription. When validation failed, opCtx has no operation and the
// query is parsed again (the error path only) to find it; a query that
// does not parse is not known to be one.
func (s *Server) isSubscription(opCtx *graphql.OperationContext, params *graphql.RawParams) bool {
	if opCtx != nil && opCtx.Operation != nil {
		return opCtx.Operation.Operation == ast.Subscription
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: params.Query}, s.cfg.MaxTokens)
	if err != nil {
		return false
	}
	op := doc.Operations.ForName(params.OperationName)
	return op != nil && op.Operation == ast.Subscription
}

func sseEvent(dst, payload []byte) []byte {
	dst = append(dst, "event: next\ndata: "...)
	dst = append(dst, payload...)
	return append(dst, "\n\n"...)
}

// codeResponse renders a core error as a {"errors":[...]} response.
func codeResponse(err error) []byte {
	code, msg := graph.Code(err)
	return marshalErrors(gqlerror.List{{Message: msg, Extensions: map[string]any{"code": code}}})
}
