package server

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"meshgate/graph"
	"meshgate/shard"
)

func acceptsEventStream(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
			return true
		}
	}
	return false
}

// sseConn is one graphql-sse stream (distinct connections mode). Its
// handler goroutine waits on a one-slot channel that both the queue and the
// shared wheel (keep-alives, token expiry) signal.
type sseConn struct {
	wake    chan struct{}
	pingDue atomic.Bool
	expired atomic.Bool
	expires time.Time
	every   time.Duration
	last    atomic.Int64 // unix nanoseconds of the last write
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

// serveSSE is GraphQL over Server-Sent Events as graphql-sse's distinct
// connections mode: GET (usable from EventSource; the token may travel in
// extensions.authorization) or POST; each result is an `event: next`, the
// end an `event: complete`. Requests that fail before execution get a JSON
// error response, as graphql-sse does.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeRequestError(w, mediaJSON, &requestError{http.StatusMethodNotAllowed, graph.CodeBadRequest, "use GET or POST"})
		return
	}
	params, rerr := s.readParams(w, r)
	if rerr != nil {
		writeRequestError(w, mediaJSON, rerr)
		return
	}
	p, exp, rerr := s.authenticateExp(r, params.Extensions)
	if rerr != nil {
		refuseToken(w, mediaJSON, rerr)
		return
	}
	if !s.guard.allowRequest(p.User) {
		tooMany(w, mediaJSON, "too many requests: slow down")
		return
	}
	if ok, why := s.guard.openConn(p.User); !ok {
		tooMany(w, mediaJSON, why)
		return
	}
	defer s.guard.closeConn(p.User)
	ctx, opCtx, errBody := s.operationContext(r.Context(), p, params)
	if errBody != nil {
		writeBody(w, mediaJSON, http.StatusBadRequest, errBody)
		return
	}
	if r.Method == http.MethodGet && opCtx.Operation.Operation == ast.Mutation {
		w.Header().Set("Allow", "POST")
		writeRequestError(w, mediaJSON, &requestError{http.StatusMethodNotAllowed, graph.CodeBadRequest, "GET cannot run a mutation; use POST"})
		return
	}
	sop, isStream, err := graph.ParseStreamOp(opCtx)
	if err != nil {
		code, msg := graph.Code(err)
		writeRequestError(w, mediaJSON, &requestError{http.StatusBadRequest, code, msg})
		return
	}
	c := &sseConn{wake: make(chan struct{}, 1), expires: exp, every: s.cfg.SSEKeepAlive}
	var st shard.Reader
	if isStream {
		st, err = s.node.Attach(ctx, p, sop.Queue, sop.After, c)
		if err != nil {
			code, msg := graph.Code(err)
			status := http.StatusOK
			if code == graph.CodeQueueNotFound {
				status = http.StatusNotFound
			}
			writeRequestError(w, mediaJSON, &requestError{status, code, msg})
			return
		}
		defer st.Close()
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	c.last.Store(s.cfg.Now().UnixNano())
	s.wheel.add(c)
	defer s.wheel.remove(c)

	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(s.cfg.Now().Add(s.cfg.WS.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		c.last.Store(s.cfg.Now().UnixNano())
		return rc.Flush() == nil
	}
	complete := func() { write([]byte("event: complete\ndata:\n\n")) }

	if !isStream {
		responses, ctx := s.exec.DispatchOperation(ctx, opCtx)
		for {
			resp := responses(ctx)
			if resp == nil {
				break
			}
			b, err := json.Marshal(resp)
			if err != nil || !write(sseEvent(nil, b)) {
				return
			}
		}
		complete()
		return
	}
	var notes []shard.Notification
	var buf []byte
	for {
		notes, err = st.Next(notes[:0], maxPerOp)
		buf = buf[:0]
		for _, n := range notes {
			buf = append(buf, "event: next\ndata: "...)
			buf = sop.Plan.Encode(buf, n)
			buf = append(buf, "\n\n"...)
		}
		if len(buf) > 0 && !write(buf) {
			return
		}
		if err != nil {
			write(sseEvent(nil, codeResponse(err)))
			complete()
			return
		}
		if len(notes) == maxPerOp {
			continue
		}
		select {
		case <-c.wake:
		case <-ctx.Done():
			if s.base.Err() != nil {
				complete() // shutting down: the client reconnects elsewhere with after
			}
			return
		}
		if c.expired.Load() {
			write(sseEvent(nil, codeResponse(graph.ErrUnauthenticated)))
			complete()
			return
		}
		if c.pingDue.Swap(false) && !write([]byte(":\n\n")) {
			return
		}
	}
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
