package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gobwas/ws"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"meshgate/graph"
	"meshgate/shard"
)

// WebSocket subprotocols.
const (
	protoTransportWS = "graphql-transport-ws" // graphql-ws library, PROTOCOL.md
	protoLegacy      = "graphql-ws"           // subscriptions-transport-ws (Apollo, legacy)
)

// Close codes from graphql-transport-ws's PROTOCOL.md and RFC 6455.
const (
	closeNormal          ws.StatusCode = 1000
	closeGoingAway       ws.StatusCode = 1001
	closeTooBig          ws.StatusCode = 1009
	closeInternal        ws.StatusCode = 1011
	closeBadRequest      ws.StatusCode = 4400
	closeUnauthorized    ws.StatusCode = 4401
	closeForbidden       ws.StatusCode = 4403
	closeSubprotocol     ws.StatusCode = 4406
	closeInitTimeout     ws.StatusCode = 4408
	closeDuplicateID     ws.StatusCode = 4409
	closeTooManyRequests ws.StatusCode = 4429
	closeTryAgainLater   ws.StatusCode = 1013 // a consumer that cannot keep up
)

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// wsConn is one WebSocket connection. The handler goroutine reads; a writer
// goroutine exists only while something is waiting to be sent, and writes
// every pending message with a single flush. An idle connection holds no
// timer and no goroutine besides its reader.
type wsConn struct {
	s      *Server
	nc     net.Conn
	legacy bool
	start  time.Time
	header string // the upgrade request's Authorization, used when connection_init carries none

	lastRead atomic.Int64 // unix nanoseconds

	// read-side state: only the reader goroutine touches these
	initSeen bool
	tokens   float64
	tokensAt time.Time

	mu        sync.Mutex
	principal shard.Principal
	acked     bool
	expires   time.Time
	ops       opList
	ctrl      [][]byte // pending whole frames: acks, pongs, results, errors
	pending   bool     // something for the writer since it last looked
	writing   bool     // a writer goroutine is running
	// awake mirrors pending && writing for Notify's fast path: while it is
	// set, the writer is queued and will look at the streams again, so a
	// delivery need not take mu. Cleared under mu before the writer scans.
	awake atomic.Bool
	// deadlineSet is when the write deadline was last moved (writer only):
	// it is moved at most every second, not before every write.
	deadlineSet time.Time
	closing     bool // a close frame is queued; send nothing after it
	pingDue     bool
	closed      bool
}

// wsOp is one operation on a connection: a `notifications` stream served by
// the connection's writer, or an operation gqlgen executes.
type wsOp struct {
	c        *wsConn
	id       string
	lagSince time.Time // when the stream fell more than MaxLag behind; writer only
	st       shard.Reader
	plan     *graph.Plan
	dirty    atomic.Bool
	stop     context.CancelFunc // for gqlgen-executed operations
}

// Notify marks the stream readable and wakes the connection's writer. It
// never blocks: this is what a publish costs per subscriber on the hot path.
func (op *wsOp) Notify() {
	op.dirty.Store(true)
	op.c.kick()
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.guard.nodeFull() {
		tooMany(w, mediaJSON, "this node is full: connect to another")
		return
	}
	up := ws.HTTPUpgrader{
		Protocol: func(p string) bool { return p == protoTransportWS || p == protoLegacy },
	}
	nc, rw, hs, err := up.Upgrade(r, w)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "err", err, "remote", r.RemoteAddr)
		return
	}
	now := s.cfg.Now()
	c := &wsConn{s: s, nc: nc, legacy: hs.Protocol == protoLegacy, start: now, header: r.Header.Get("Authorization"),
		tokens: float64(s.cfg.WS.MessageBurst), tokensAt: now}
	c.lastRead.Store(now.UnixNano())
	// Only after the handshake may the client have sent frames; keep the
	// hijacked reader only if it holds some, so an idle connection keeps
	// no 4 KiB buffer.
	var rd io.Reader = nc
	if rw != nil && rw.Reader.Buffered() > 0 {
		rd = io.MultiReader(io.LimitReader(rw.Reader, int64(rw.Reader.Buffered())), nc)
	}
	s.wheel.add(c)
	// The reader runs in a goroutine of its own and this handler returns,
	// so that net/http's per-connection state (request, buffers, the
	// handler's grown stack) is garbage: an idle WebSocket keeps only what
	// it needs.
	go c.run(rd, hs.Protocol == "")
}

// run is the connection's reader goroutine; it owns the connection's end.
func (c *wsConn) run(rd io.Reader, noProtocol bool) {
	defer c.s.wheel.remove(c)
	defer c.teardown()
	defer func() {
		if v := recover(); v != nil {
			c.s.log.Error("websocket panic", "panic", v)
			c.closeWith(closeInternal, "internal error")
		}
	}()
	if noProtocol {
		c.closeWith(closeSubprotocol, "Subprotocol not acceptable")
		return
	}
	c.readLoop(rd)
}

// readLoop reads frames until the connection ends.
func (c *wsConn) readLoop(rd io.Reader) {
	max := c.s.cfg.WS.MaxMessageBytes
	var hdr [ws.MaxHeaderSize - 2]byte
	var msg []byte
	var msgOp ws.OpCode
	for {
		h, err := ws.ReadHeaderBuffer(rd, hdr[:])
		if err != nil {
			return
		}
		c.lastRead.Store(c.s.cfg.Now().UnixNano())
		if !h.Masked || h.Rsv != 0 {
			c.closeWith(ws.StatusProtocolError, "protocol error")
			return
		}
		if h.OpCode.IsControl() {
			if h.Length > 125 || !h.Fin {
				c.closeWith(ws.StatusProtocolError, "protocol error")
				return
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(rd, p); err != nil {
				return
			}
			ws.Cipher(p, h.Mask, 0)
			switch h.OpCode {
			case ws.OpPing:
				c.send(frame(nil, ws.OpPong, p))
			case ws.OpClose:
				code, _ := ws.ParseCloseFrameData(p)
				if code == 0 {
					code = closeNormal
				}
				c.closeWith(code, "")
				return
			}
			continue
		}
		switch {
		case h.OpCode == ws.OpContinuation && msg == nil,
			h.OpCode != ws.OpContinuation && msg != nil:
			c.closeWith(ws.StatusProtocolError, "protocol error")
			return
		case h.OpCode != ws.OpContinuation:
			msgOp = h.OpCode
			msg = make([]byte, 0, min(int(h.Length), max))
		}
		if int64(len(msg))+h.Length > int64(max) {
			c.closeWith(closeTooBig, fmt.Sprintf("message larger than %d bytes", max))
			return
		}
		n := len(msg)
		msg = msg[:n+int(h.Length)]
		if _, err := io.ReadFull(rd, msg[n:]); err != nil {
			return
		}
		ws.Cipher(msg[n:], h.Mask, 0)
		if !h.Fin {
			continue
		}
		data := msg
		msg = nil
		if msgOp != ws.OpText && msgOp != ws.OpBinary {
			c.closeWith(ws.StatusProtocolError, "protocol error")
			return
		}
		if !c.allow() {
			c.closeWith(closeTooManyRequests, "too many messages")
			return
		}
		if !c.handleOffStack(data) {
			return
		}
	}
}

// allow takes one token from the connection's message bucket.
func (c *wsConn) allow() bool {
	now := c.s.cfg.Now()
	cfg := c.s.cfg.WS
	c.tokens = min(float64(cfg.MessageBurst), c.tokens+now.Sub(c.tokensAt).Seconds()*cfg.MessageRate)
	c.tokensAt = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// handleOffStack runs handle on a short-lived goroutine and waits for it.
// Handling a message (JSON decoding, gqlgen's parse and validation) needs a
// deep stack; the reader goroutine lives as long as the connection, and a
// stack, once grown, stays grown. Keeping the reader shallow keeps every
// idle connection at the smallest stack; messages are rare (init,
// subscribe, complete, ping), so the extra goroutine costs nothing that shows.
func (c *wsConn) handleOffStack(data []byte) bool {
	done := make(chan bool, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				c.s.log.Error("websocket message panic", "panic", v)
				c.closeWith(closeInternal, "internal error")
				done <- false
			}
		}()
		done <- c.handle(data)
	}()
	return <-done
}

// message is a protocol message in either subprotocol.
type message struct {
	ID      *string         `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// handle processes one message; false ends the connection.
func (c *wsConn) handle(data []byte) bool {
	var m message
	if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
		return c.fail(closeBadRequest, "Invalid message received")
	}
	if c.legacy {
		return c.handleLegacy(m)
	}
	switch m.Type {
	case "connection_init":
		return c.handleInit(m.Payload)
	case "ping":
		c.sendJSON(`{"type":"pong"}`)
		return true
	case "pong":
		return true
	case "subscribe":
		if !c.isAcked() {
			return c.fail(closeUnauthorized, "Unauthorized")
		}
		if !c.s.guard.allowRequest(c.user()) {
			return c.fail(closeTooManyRequests, "too many requests")
		}
		if m.ID == nil || *m.ID == "" {
			return c.fail(closeBadRequest, "Invalid message received")
		}
		var params graphql.RawParams
		if rerr := decodeRequest(m.Payload, &params); rerr != nil {
			return c.fail(closeBadRequest, "Invalid message received")
		}
		return c.subscribe(*m.ID, &params)
	case "complete":
		if m.ID == nil {
			return c.fail(closeBadRequest, "Invalid message received")
		}
		c.stopOp(*m.ID)
		return true
	}
	return c.fail(closeBadRequest, fmt.Sprintf("Unexpected message of type %s received", truncate(m.Type, 32)))
}

// handleLegacy speaks subscriptions-transport-ws.
func (c *wsConn) handleLegacy(m message) bool {
	switch m.Type {
	case "connection_init":
		return c.handleInit(m.Payload)
	case "start":
		if c.isAcked() && !c.s.guard.allowRequest(c.user()) {
			return c.fail(closeTooManyRequests, "too many requests")
		}
		if !c.isAcked() {
			c.sendJSON(`{"type":"connection_error","payload":{"message":"send connection_init first"}}`)
			return c.fail(closeUnauthorized, "Unauthorized")
		}
		if m.ID == nil || *m.ID == "" {
			return c.fail(closeBadRequest, "Invalid message received")
		}
		var params graphql.RawParams
		if rerr := decodeRequest(m.Payload, &params); rerr != nil {
			c.sendOpErrors(*m.ID, marshalErrorList(gqlerror.List{{Message: rerr.msg, Extensions: map[string]any{"code": rerr.code}}}))
			return true
		}
		return c.subscribe(*m.ID, &params)
	case "stop":
		if m.ID != nil {
			c.stopOp(*m.ID)
		}
		return true
	case "connection_terminate":
		c.closeWith(closeNormal, "")
		return false
	}
	return c.fail(closeBadRequest, fmt.Sprintf("Unexpected message of type %s received", truncate(m.Type, 32)))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (c *wsConn) fail(code ws.StatusCode, reason string) bool {
	c.closeWith(code, reason)
	return false
}

func (c *wsConn) user() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.principal.User
}

func (c *wsConn) isAcked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acked
}

// handleInit authenticates from the payload's authorization, or else the
// upgrade request's Authorization header.
func (c *wsConn) handleInit(payload json.RawMessage) bool {
	if c.initSeen {
		return c.fail(closeTooManyRequests, "Too many initialisation requests")
	}
	c.initSeen = true
	var init map[string]any
	if p := bytes.TrimSpace(payload); len(p) > 0 && string(p) != "null" {
		if p[0] != '{' || json.Unmarshal(p, &init) != nil {
			return c.fail(closeBadRequest, "Invalid message received")
		}
	}
	tok, _ := init["authorization"].(string)
	if tok == "" {
		tok, _ = init["Authorization"].(string)
	}
	if tok == "" {
		if h, ok := init["headers"].(map[string]any); ok {
			tok, _ = h["Authorization"].(string)
		}
	}
	if tok == "" {
		tok = c.header
	}
	p, exp, err := c.s.auth.Verify(tok)
	if err != nil {
		c.s.log.Debug("websocket token refused", "err", err)
		if c.legacy {
			c.sendJSON(`{"type":"connection_error","payload":{"message":"Forbidden","extensions":{"code":"UNAUTHENTICATED"}}}`)
		}
		return c.fail(closeForbidden, "Forbidden")
	}
	if ok, why := c.s.guard.openConn(p.User); !ok {
		return c.fail(closeTooManyRequests, why)
	}
	c.mu.Lock()
	c.principal, c.expires, c.acked = p, exp, true
	c.mu.Unlock()
	c.sendJSON(`{"type":"connection_ack"}`)
	if c.legacy {
		c.sendJSON(`{"type":"ka"}`)
	}
	return true
}

// subscribe starts operation id.
func (c *wsConn) subscribe(id string, params *graphql.RawParams) bool {
	c.mu.Lock()
	if c.ops.get(id) != nil {
		c.mu.Unlock()
		if c.legacy {
			c.sendOpErrors(id, marshalErrorList(gqlerror.List{{Message: "operation id already in use", Extensions: map[string]any{"code": graph.CodeBadRequest}}}))
			return true
		}
		return c.fail(closeDuplicateID, "Subscriber for "+truncate(id, 64)+" already exists")
	}
	if len(c.ops) >= c.s.cfg.WS.MaxOperations {
		c.mu.Unlock()
		c.sendOpErrors(id, marshalErrorList(gqlerror.List{{Message: fmt.Sprintf("at most %d operations per connection", c.s.cfg.WS.MaxOperations), Extensions: map[string]any{"code": graph.CodeLimitExceeded}}}))
		return true
	}
	op := &wsOp{c: c, id: id}
	c.ops.add(op) // reserve the id before anything can complete it
	p := c.principal
	c.mu.Unlock()

	params.ReadTime = graphql.TraceTiming{Start: graphql.Now(), End: graphql.Now()}
	if len(params.Query) > c.s.cfg.MaxQueryBytes {
		c.endOp(op, marshalErrorList(gqlerror.List{{Message: fmt.Sprintf("query is longer than %d bytes", c.s.cfg.MaxQueryBytes), Extensions: map[string]any{"code": graph.CodeLimitExceeded}}}))
		return true
	}
	ctx, opCtx, errBody := c.s.operationContext(c.s.base, p, params)
	if errBody != nil {
		c.endOp(op, errorsOnly(errBody))
		return true
	}
	sop, ok, err := graph.ParseStreamOp(opCtx)
	if err != nil {
		c.endOp(op, codeErrors(err))
		return true
	}
	if ok {
		st, err := c.s.node.Attach(ctx, p, sop.Queue, sop.After, op)
		if err != nil {
			c.endOp(op, codeErrors(err))
			return true
		}
		c.mu.Lock()
		op.st, op.plan = st, sop.Plan
		alive := c.ops.get(id) == op
		c.mu.Unlock()
		if !alive { // completed meanwhile
			st.Close()
			return true
		}
		op.Notify() // the first read happens in the writer
		return true
	}
	// Anything else gqlgen executes, in a goroutine of its own so the
	// reader keeps reading (a long-poll query over WebSocket must not stall
	// pings or other operations).
	opCtxCtx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	op.stop = cancel
	c.mu.Unlock()
	go c.execute(opCtxCtx, op, opCtx)
	return true
}

func (c *wsConn) execute(ctx context.Context, op *wsOp, opCtx *graphql.OperationContext) {
	defer op.stop()
	defer func() {
		if v := recover(); v != nil {
			c.s.log.Error("operation panic", "panic", v)
			c.endOp(op, marshalErrorList(gqlerror.List{{Message: "internal error", Extensions: map[string]any{"code": graph.CodeInternal}}}))
		}
	}()
	responses, ctx := c.s.exec.DispatchOperation(ctx, opCtx)
	for {
		resp := responses(ctx)
		if resp == nil || ctx.Err() != nil {
			break
		}
		b, err := json.Marshal(resp) // the response buffer is reused: marshal before the next call
		if err != nil {
			c.s.log.Error("marshal response", "err", err)
			break
		}
		c.sendNext(op, b)
	}
	c.endOp(op, nil)
}

// sendNext queues a result for op unless op has ended.
func (c *wsConn) sendNext(op *wsOp, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops.get(op.id) != op || c.closing {
		return
	}
	c.ctrl = append(c.ctrl, c.nextFrame(nil, op.id, payload))
	c.wakeLocked()
}

// endOp ends op: with errs (a JSON array) as an error message, or with a
// complete message. Nothing is sent if the client completed it already.
func (c *wsConn) endOp(op *wsOp, errs []byte) {
	c.mu.Lock()
	if c.ops.get(op.id) != op {
		c.mu.Unlock()
		return
	}
	c.ops.remove(op.id)
	st := op.st
	if !c.closing {
		if errs != nil {
			c.ctrl = append(c.ctrl, c.errorFrame(op.id, errs))
			if c.legacy {
				c.ctrl = append(c.ctrl, c.completeFrame(op.id))
			}
		} else {
			c.ctrl = append(c.ctrl, c.completeFrame(op.id))
		}
		c.wakeLocked()
	}
	c.mu.Unlock()
	if st != nil {
		st.Close()
	}
}

// stopOp ends op id at the client's request: no message is sent back.
func (c *wsConn) stopOp(id string) {
	c.mu.Lock()
	op := c.ops.remove(id)
	c.mu.Unlock()
	if op == nil {
		return
	}
	if op.st != nil {
		op.st.Close()
	}
	if op.stop != nil {
		op.stop()
	}
}

func (c *wsConn) sendOpErrors(id string, errs []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.ctrl = append(c.ctrl, c.errorFrame(id, errs))
	if c.legacy {
		c.ctrl = append(c.ctrl, c.completeFrame(id))
	}
	c.wakeLocked()
}

func (c *wsConn) sendJSON(msg string) { c.send(frame(nil, ws.OpText, []byte(msg))) }

// send queues a whole frame.
func (c *wsConn) send(f []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.ctrl = append(c.ctrl, f)
	c.wakeLocked()
}

// closeWith queues a close frame; the writer sends it and closes the socket.
func (c *wsConn) closeWith(code ws.StatusCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.closing = true
	c.ctrl = append(c.ctrl, frame(nil, ws.OpClose, ws.NewCloseFrameBody(code, reason)))
	c.wakeLocked()
}

// kick wakes the writer.
func (c *wsConn) kick() {
	if c.awake.Load() {
		return
	}
	c.mu.Lock()
	c.wakeLocked()
	c.mu.Unlock()
}

func (c *wsConn) wakeLocked() {
	c.pending = true
	if c.closed {
		return
	}
	c.awake.Store(true)
	if c.writing {
		return
	}
	c.writing = true
	c.s.writers.push(c)
}

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// maxRound bounds what one flush sends, so that one busy connection cannot
// make a huge buffer; the rest goes in the next round.
const (
	maxRound = 256 << 10
	maxPerOp = 64
	// closeGrace is how long a closing connection waits for the client's
	// close frame or hang-up.
	closeGrace = time.Second
)

// writeLoop sends what is pending, in at most maxRounds rounds. It reports
// more when output is still pending, in which case c stays marked writing
// and the caller queues it again (so one busy connection cannot hold a
// writer). Only the writer that holds c runs it: it is the socket's only
// writer.
func (c *wsConn) writeLoop(maxRounds int) (more bool) {
	bp := writeBufs.Get().(*[]byte)
	defer writeBufs.Put(bp)
	var notes []shard.Notification
	var dirty []*wsOp
	for round := 0; ; round++ {
		c.mu.Lock()
		if !c.pending || c.closed {
			c.writing = false
			c.awake.Store(false)
			c.mu.Unlock()
			return false
		}
		if round == maxRounds {
			c.mu.Unlock()
			return true
		}
		c.pending = false
		c.awake.Store(false)
		buf := (*bp)[:0]
		for _, f := range c.ctrl {
			buf = append(buf, f...)
		}
		c.ctrl = c.ctrl[:0]
		closing := c.closing
		if c.pingDue && !closing {
			c.pingDue = false
			if c.legacy {
				buf = frame(buf, ws.OpText, []byte(`{"type":"ka"}`))
			} else {
				buf = frame(buf, ws.OpPing, nil)
			}
		}
		dirty = dirty[:0]
		if !closing {
			for _, op := range c.ops {
				if op.st != nil && op.dirty.CompareAndSwap(true, false) {
					dirty = append(dirty, op)
				}
			}
		}
		c.mu.Unlock()

		var gone []*wsOp
		var goneErr []error
		var oldest time.Time
		slow := false
		carried := 0
		for _, op := range dirty {
			var err error
			notes, err = op.st.Next(notes[:0], maxPerOp)
			slow = slow || c.lagging(op)
			if len(notes) > 0 && (oldest.IsZero() || notes[0].Time.Before(oldest)) {
				oldest = notes[0].Time
			}
			for _, n := range notes {
				buf = c.streamFrame(buf, op, n)
			}
			carried += len(notes)
			if err != nil {
				gone, goneErr = append(gone, op), append(goneErr, err)
			} else if len(notes) == maxPerOp || len(buf) > maxRound {
				op.dirty.Store(true) // more to read: next round
				c.kick()
			}
		}
		*bp = buf
		if len(buf) > 0 {
			// A write blocked WriteTimeout (less at most a tenth of it,
			// at most a second) fails.
			timeout := c.s.cfg.WS.WriteTimeout
			if now := c.s.cfg.Now(); now.Sub(c.deadlineSet) > min(time.Second, timeout/10) {
				c.deadlineSet = now
				_ = c.nc.SetWriteDeadline(now.Add(timeout))
			}
			_, err := c.nc.Write(buf)
			if err != nil {
				c.s.log.Debug("websocket write failed", "err", err)
				c.abort()
				return false
			}
			c.s.metrics.observeWrite(oldest, c.s.cfg.Now())
			if carried > 0 {
				c.s.writers.wrote(carried)
			}
		}
		for i, op := range gone {
			c.endOp(op, codeErrors(goneErr[i]))
		}
		if slow {
			c.s.log.Info("websocket consumer too slow: closing", "max_lag", c.s.cfg.WS.MaxLag, "grace", c.s.cfg.WS.LagGrace)
			c.closeWith(closeTryAgainLater, "consumer too slow: reconnect and resume with after")
		}
		if closing {
			// The close frame is out: give the client closeGrace to
			// answer, then the reader's read fails and it tears down.
			_ = c.nc.SetReadDeadline(c.s.cfg.Now().Add(closeGrace))
			c.mu.Lock()
			c.writing = false
			c.awake.Store(false)
			c.mu.Unlock()
			return false
		}
	}
}

// lagging reports whether op's stream has been more than MaxLag
// notifications behind its queue for longer than LagGrace.
func (c *wsConn) lagging(op *wsOp) bool {
	l, ok := op.st.(interface{ Lag() uint64 })
	if !ok {
		return false
	}
	if l.Lag() <= uint64(c.s.cfg.WS.MaxLag) {
		op.lagSince = time.Time{}
		return false
	}
	now := c.s.cfg.Now()
	if op.lagSince.IsZero() {
		op.lagSince = now
		return false
	}
	return now.Sub(op.lagSince) > c.s.cfg.WS.LagGrace
}

// streamFrame appends op's `next` message for n: the payload is encoded
// once per event and only the seq is spliced in per queue. No allocation.
func (c *wsConn) streamFrame(dst []byte, op *wsOp, n shard.Notification) []byte {
	dst, start, body := c.begin(dst, c.nextType(), op.id, true)
	dst = op.plan.Encode(dst, n)
	return end(dst, start, body)
}

func (c *wsConn) nextFrame(dst []byte, id string, payload []byte) []byte {
	dst, start, body := c.begin(dst, c.nextType(), id, true)
	return end(append(dst, payload...), start, body)
}

func (c *wsConn) errorFrame(id string, errs []byte) []byte {
	dst, start, body := c.begin(nil, "error", id, true)
	return end(append(dst, errs...), start, body)
}

func (c *wsConn) completeFrame(id string) []byte {
	dst, start, body := c.begin(nil, "complete", id, false)
	return end(dst, start, body)
}

// nextType is the result message's type in this connection's subprotocol.
func (c *wsConn) nextType() string {
	if c.legacy {
		return "data"
	}
	return "next"
}

// begin appends the start of a text frame carrying
// {"type":typ,"id":id[,"payload":…]}: a maximal header gap, then the
// message up to where the payload goes. The caller appends the payload and
// calls end, which writes the real header: one pass, no copy of the payload.
func (c *wsConn) begin(dst []byte, typ, id string, payload bool) (out []byte, start, body int) {
	start = len(dst)
	dst = append(dst, make([]byte, 10)...)
	body = len(dst)
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","id":`...)
	dst = appendJSONString(dst, id)
	if payload {
		dst = append(dst, `,"payload":`...)
	}
	return dst, start, body
}

// end closes the message begun at start and writes its frame header.
func end(dst []byte, start, body int) []byte {
	return placeHeader(append(dst, '}'), start, body, ws.OpText)
}

// placeHeader writes a frame header for dst[body:] ending at body and
// closes the gap left at start.
func placeHeader(dst []byte, start, body int, op ws.OpCode) []byte {
	n := len(dst) - body
	var h [10]byte
	h[0] = 0x80 | byte(op)
	hl := 2
	switch {
	case n < 126:
		h[1] = byte(n)
	case n < 1<<16:
		h[1] = 126
		h[2], h[3] = byte(n>>8), byte(n)
		hl = 4
	default:
		h[1] = 127
		for i := 0; i < 8; i++ {
			h[2+i] = byte(uint64(n) >> (56 - 8*i))
		}
		hl = 10
	}
	gap := 10 - hl
	copy(dst[start+gap:], h[:hl])
	if gap > 0 {
		copy(dst[start:], dst[start+gap:])
		dst = dst[:len(dst)-gap]
	}
	return dst
}

// frame appends a whole unmasked frame with payload p.
func frame(dst []byte, op ws.OpCode, p []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, 10)...)
	body := len(dst)
	dst = append(dst, p...)
	return placeHeader(dst, start, body, op)
}

// appendJSONString appends s as a JSON string. Operation ids are short
// ASCII in practice: those go straight in, without an allocation per frame.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// abort closes the socket; the reader then returns and tears down.
func (c *wsConn) abort() {
	c.mu.Lock()
	c.closed = true
	c.writing = false
	c.awake.Store(false)
	c.mu.Unlock()
	_ = c.nc.Close()
}

// drainWriter waits briefly for a queued close frame to go out.
func (c *wsConn) drainWriter() {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		done := !c.writing
		c.mu.Unlock()
		if done {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// teardown runs when the reader returns: every operation ends, every
// stream detaches (the queues keep their notifications for a resume).
func (c *wsConn) teardown() {
	c.drainWriter() // let a queued close frame reach the client
	c.mu.Lock()
	linger := c.closing && !c.closed
	c.mu.Unlock()
	if linger {
		// We closed: read (and drop) what the client still sends until it
		// answers or hangs up, bounded, so that closing the socket does not
		// reset the connection before the client has read our close frame.
		_ = c.nc.SetReadDeadline(time.Now().Add(closeGrace))
		_, _ = io.CopyN(io.Discard, c.nc, 1<<20)
	}
	c.mu.Lock()
	c.closed = true
	c.closing = true
	ops := c.ops
	c.ops = nil
	acked, user := c.acked, c.principal.User
	c.mu.Unlock()
	if acked {
		c.s.guard.closeConn(user)
	}
	_ = c.nc.Close()
	for _, op := range ops {
		if op.st != nil {
			op.st.Close()
		}
		if op.stop != nil {
			op.stop()
		}
	}
}

// goingAway tells the client the server is shutting down, so it
// reconnects elsewhere and resumes with `after`.
func (c *wsConn) goingAway() { c.closeWith(closeGoingAway, "server shutting down") }

// tick runs on the shared wheel: init deadline, token expiry, keep-alive.
func (c *wsConn) tick(now time.Time) {
	cfg := c.s.cfg.WS
	c.mu.Lock()
	acked, exp := c.acked, c.expires
	c.mu.Unlock()
	switch {
	case !acked && now.Sub(c.start) > cfg.InitTimeout:
		c.closeWith(closeInitTimeout, "Connection initialisation timeout")
	case acked && now.After(exp):
		c.closeWith(closeForbidden, "token expired")
	default:
		idle := now.Sub(time.Unix(0, c.lastRead.Load()))
		if idle > 3*cfg.PingInterval {
			c.abort()
			return
		}
		if idle > cfg.PingInterval || c.legacy && acked && now.Sub(c.start)%cfg.PingInterval < time.Second {
			c.mu.Lock()
			c.pingDue = true
			c.wakeLocked()
			c.mu.Unlock()
		}
	}
}

// codeErrors renders a core error as a GraphQL error list with its code.
func codeErrors(err error) []byte {
	code, msg := graph.Code(err)
	return marshalErrorList(gqlerror.List{{Message: msg, Extensions: map[string]any{"code": code}}})
}

func marshalErrorList(errs gqlerror.List) []byte {
	b, _ := json.Marshal(errs)
	return b
}

// errorsOnly extracts the errors array from a {"errors":[...]} body.
func errorsOnly(body []byte) []byte {
	var v struct {
		Errors json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &v) != nil || len(v.Errors) == 0 {
		return []byte(`[{"message":"internal error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]`)
	}
	return v.Errors
}

// opList is a connection's operations. Nearly every connection has exactly
// one, so a slice scanned linearly costs less memory than a map; the
// per-connection cap (MaxOperations) bounds the scan.
type opList []*wsOp

func (l opList) get(id string) *wsOp {
	for _, op := range l {
		if op.id == id {
			return op
		}
	}
	return nil
}

func (l *opList) add(op *wsOp) { *l = append(*l, op) }

func (l *opList) remove(id string) *wsOp {
	for i, op := range *l {
		if op.id == id {
			*l = append((*l)[:i], (*l)[i+1:]...)
			return op
		}
	}
	return nil
}
