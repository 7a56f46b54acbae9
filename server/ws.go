package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gobwas/ws"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"meshgate/graph"
	"meshgate/internal/netpoll"
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

// wsConn is one WebSocket connection. A reader goroutine reads; a writer
// goroutine exists only while something is waiting to be sent, and writes
// every pending message with a single flush. An idle connection holds no
// timer and, where the server has a poller (s.poller, Linux), no
// goroutine either: between frames, with nothing buffered above the
// socket, the reader parks the connection on the poller and returns, and
// the poller starts a reader again once the socket is readable (park).
type wsConn struct {
	s      *Server
	nc     net.Conn
	fr     *frameReader
	rc     syscall.RawConn // nc's socket, for the poller; nil: never parked
	tc     *tls.Conn       // nc if it is TLS
	legacy bool
	start  time.Time
	header string // the upgrade request's Authorization, used when connection_init carries none

	lastRead  atomic.Int64 // unix nanoseconds
	lastWrite atomic.Int64 // unix nanoseconds; writer only stores it

	// read-side state: only the reader goroutine, or the goroutine
	// handling a message while the reader waits for it, touches these
	initSeen bool
	tokens   float64
	tokensAt time.Time
	then     func() // an operation to run once the reader goes on (handleSafely)

	mu        sync.Mutex
	principal shard.Principal
	acked     bool
	expires   time.Time
	ops       opList
	ctrl      [][]byte // pending whole frames: acks, results, errors
	ctrlBytes int      // the bytes in ctrl, at most WS.MaxQueuedBytes (see queueLocked)
	// pong is the payload of the latest ping not yet answered; RFC 6455
	// (5.5.3) lets an endpoint answer only the most recent ping, so a ping
	// flood queues at most one pong.
	pong    []byte
	hasPong bool
	pending bool // something for the writer since it last looked
	writing bool // a writer goroutine is running
	// awake mirrors pending && writing for Notify's fast path: while it is
	// set, the writer is queued and will look at the streams again, so a
	// delivery need not take mu. Cleared under mu before the writer scans.
	awake atomic.Bool
	// deadlineSet is when the write deadline was last moved (writer only):
	// it is moved at most every second, not before every write.
	deadlineSet time.Time
	closing     bool // a close frame is queued; send nothing after it
	pingDue     bool // a WebSocket ping frame
	kaDue       bool // a protocol keep-alive: `ka` (legacy) or a `ping` message
	closed      bool
	// parked is the poller's pending wait while the connection has no
	// reader goroutine; zero otherwise.
	parked netpoll.Token
	// lastPing and lastKA are when tick last asked for each.
	lastPing, lastKA time.Time
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
	// hijacked reader's bytes only if it holds some, so an idle connection
	// keeps no 4 KiB buffer.
	var rd io.Reader = connReader{c}
	if rw != nil && rw.Reader.Buffered() > 0 {
		pre, _ := rw.Reader.Peek(rw.Reader.Buffered())
		rd = &prefixReader{buf: bytes.Clone(pre), r: rd}
	}
	c.rc, c.tc = rawConnOf(nc)
	c.fr = newFrameReader(rd, s.cfg.WS.MaxMessageBytes, c.tc == nil)
	c.fr.onFrame = c.touched
	s.wheel.add(c)
	// The reader runs in a goroutine of its own and this handler returns,
	// so that net/http's per-connection state (request, buffers, the
	// handler's grown stack) is garbage: an idle WebSocket keeps only what
	// it needs.
	go c.run(hs.Protocol == "")
}

// rawConnOf is nc's socket, for the poller, and nc itself if it is TLS.
// A connection of another kind (a test's pipe, a wrapped listener's)
// has no socket to wait on, and is never parked.
func rawConnOf(nc net.Conn) (syscall.RawConn, *tls.Conn) {
	inner := nc
	tc, _ := nc.(*tls.Conn)
	if tc != nil {
		inner = tc.NetConn()
	}
	sc, ok := inner.(syscall.Conn)
	if !ok {
		return nil, tc
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, tc
	}
	return rc, tc
}

// run is the connection's reader: the goroutine serveWS starts, then one
// the poller starts each time a parked connection becomes readable. The
// reader that does not park owns the connection's end.
func (c *wsConn) run(noProtocol bool) {
	parked := false
	defer func() {
		if v := recover(); v != nil {
			c.s.log.Error("websocket panic", "panic", v)
			c.closeWith(closeInternal, "internal error")
			parked = false
		}
		if !parked {
			c.teardown()
			c.s.wheel.remove(c)
		}
	}()
	if noProtocol {
		c.closeWith(closeSubprotocol, "Subprotocol not acceptable")
		return
	}
	parked = c.readLoop()
}

// resume is the poller's callback: the parked connection is readable,
// hung up, or unpark woke it.
func (c *wsConn) resume() {
	c.mu.Lock()
	c.parked = 0
	c.mu.Unlock()
	c.run(false)
}

// park hands the connection to the poller (the reader's read timed out
// between frames) if nothing is buffered above its socket: no part of a frame in the frame reader, no record or
// plaintext inside crypto/tls (whose handshake buffers it drops, see
// tlsidle.go). Input the kernel cannot see would never wake the poller.
// A closing connection is never parked: its reader must be blocked in
// Read for the read deadline the writer sets (closeGrace) to end it.
// Only the reader calls it; true means the reader must return.
func (c *wsConn) park() bool {
	if c.rc == nil || c.s.poller == nil || !c.fr.idle() {
		return false
	}
	if c.tc != nil && !tlsIdle(c.tc, true) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.closed {
		return false
	}
	// resume may start before Wait returns; it waits for c.mu, so it
	// clears c.parked after it is set.
	tok, err := c.s.poller.Wait(c.rc, c.resume)
	if err != nil {
		// The poller is closed (Shutdown) or cannot take the socket:
		// this connection keeps its reader, blocked without a deadline,
		// as it would with no poller.
		c.s.log.Debug("websocket not parked", "err", err)
		c.rc = nil
		_ = c.nc.SetReadDeadline(time.Time{})
		return false
	}
	c.parked = tok
	return true
}

// unpark starts a reader for a parked connection now. Epoll reports
// neither a socket closed on our side nor a read deadline: abort and the
// writer's close call it after either.
func (c *wsConn) unpark() {
	c.mu.Lock()
	tok := c.parked
	c.parked = 0
	c.mu.Unlock()
	if tok != 0 && c.s.poller.Cancel(tok) {
		go c.resume()
	}
}

// readLoop reads frames until the connection ends (false) or parks
// (true). A connection parks once no frame has begun for WS.ParkAfter (a
// read deadline, which connReader lets end a read only between frames),
// not as soon as it would block: a device setting up sends a message per
// round trip, and parking between them costs more than the reads.
func (c *wsConn) readLoop() bool {
	fr := c.fr
	for {
		parkable := c.rc != nil && c.s.poller != nil
		if parkable && !c.isClosing() {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.WS.ParkAfter))
		}
		op, p, err := fr.next()
		if parkable && errors.Is(err, os.ErrDeadlineExceeded) && !c.isClosing() {
			if c.park() {
				return true
			}
			continue // something is held above the socket: read on
		}
		switch {
		case errors.Is(err, errFrameProtocol):
			c.closeWith(ws.StatusProtocolError, "protocol error")
			return false
		case errors.Is(err, errFrameTooBig):
			c.closeWith(closeTooBig, fmt.Sprintf("message larger than %d bytes", c.s.cfg.WS.MaxMessageBytes))
			return false
		case errors.Is(err, errFrameUTF8):
			c.closeWith(ws.StatusInvalidFramePayloadData, "invalid UTF-8")
			return false
		case err != nil:
			return false
		}
		// Every frame the client sends, control frames included, takes a
		// token: before connection_init this is the only bound on the work
		// an unauthenticated peer can cause.
		if !c.allow() {
			c.closeWith(closeTooManyRequests, "too many messages")
			return false
		}
		if op.IsControl() {
			switch op {
			case ws.OpPing:
				c.queuePong(p)
			case ws.OpClose:
				// Echo a valid code (RFC 6455 5.5.1); never echo one
				// that may not appear on the wire.
				code, err := parseClose(p)
				switch {
				case errors.Is(err, errFrameUTF8):
					code = ws.StatusInvalidFramePayloadData
				case err != nil:
					code = ws.StatusProtocolError
				}
				c.closeWith(code, "")
				return false
			}
			continue
		}
		if op == ws.OpBinary && !c.legacy {
			// graphql-transport-ws messages are JSON text (PROTOCOL.md).
			c.closeWith(closeBadRequest, "binary messages are not accepted")
			return false
		}
		if !c.handleOffStack(p) {
			return false
		}
	}
}

// connReader is the connection as the frame reader reads it. A read
// deadline set for parking ends a read only at a frame's start; in the
// middle of a frame it is lifted and the read goes on, since the frame
// reader cannot resume a frame it was interrupted in. Once the connection
// is closing, any deadline (closeGrace) ends the read.
type connReader struct{ c *wsConn }

func (r connReader) Read(p []byte) (int, error) {
	for {
		n, err := r.c.nc.Read(p)
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if r.c.fr.idle() || r.c.isClosing() {
			return 0, err
		}
		_ = r.c.nc.SetReadDeadline(time.Time{})
	}
}

func (c *wsConn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing || c.closed
}

// touched records that a frame arrived (liveness, tick).
func (c *wsConn) touched() { c.lastRead.Store(c.s.cfg.Now().UnixNano()) }

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

// handleOffStack runs handle on a kept handler goroutine (s.handlers) and
// waits for it. Handling a message (JSON decoding, gqlgen's parse and
// validation) needs a deep stack; the reader goroutine lives as long as
// the connection, and a stack, once grown, stays grown. Keeping the
// reader shallow keeps every idle connection at the smallest stack.
//
// An operation that runs on (a query or mutation) is left in c.then by
// handle: the reader goes on reading as soon as handle returns, and the
// same goroutine then runs the operation, so an operation costs no
// goroutine of its own.
func (c *wsConn) handleOffStack(data []byte) bool {
	done := make(chan bool, 1)
	c.s.handlers.run(func() {
		if then := c.handleSafely(data, done); then != nil {
			defer func() {
				// execute and execSetup recover their own; this keeps a
				// kept goroutine, and the process, alive whatever.
				if v := recover(); v != nil {
					c.s.log.Error("websocket operation panic", "panic", v)
					c.closeWith(closeInternal, "internal error")
				}
			}()
			then()
		}
	})
	return <-done
}

// handleSafely runs handle, sends its answer on done, and returns the
// operation handle left to run. A panic closes the connection.
func (c *wsConn) handleSafely(data []byte, done chan<- bool) (then func()) {
	defer func() {
		if v := recover(); v != nil {
			c.s.log.Error("websocket message panic", "panic", v)
			c.closeWith(closeInternal, "internal error")
			c.then, then = nil, nil
			done <- false
		}
	}()
	ok := c.handle(data)
	// c.then is written and read only here and in handle, on the
	// goroutine handling the message, while the reader waits on done.
	then, c.then = c.then, nil
	done <- ok
	return then
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
	c.header = "" // used once: an idle connection need not keep a token
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
	// From here on the operation runs: its errors are a result, as
	// graphql-ws's reference server sends them (next, then complete);
	// `error` is for requests that fail validation.
	sop, ok, err := graph.ParseStreamOp(opCtx)
	if err != nil {
		c.endOpResult(op, codeResponse(err))
		return true
	}
	if ok {
		st, err := c.s.node.Attach(ctx, p, sop.Queue, sop.After, op)
		if err != nil {
			c.endOpResult(op, codeResponse(err))
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
	// Anything else runs once the reader goes on (handleOffStack), so the
	// reader keeps reading (a long-poll query over WebSocket must not
	// stall pings or other operations).
	opCtxCtx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	op.stop = cancel
	c.mu.Unlock()
	if setup, ok := graph.ParseSetupOp(opCtx); ok && !c.s.slowSetup {
		// A device's queue and subscription: answered without gqlgen's
		// execution, exactly as it would answer (graph.ExecSetup).
		c.then = func() { c.execSetup(opCtxCtx, op, setup) }
		return true
	}
	c.then = func() { c.execute(opCtxCtx, op, opCtx) }
	return true
}

// execSetup runs a createQueue or subscribe mutation on its fast path and
// ends op with its result.
func (c *wsConn) execSetup(ctx context.Context, op *wsOp, setup graph.SetupOp) {
	defer op.stop()
	resp := c.s.resolver.ExecSetup(ctx, setup, c.s.present, c.s.recov)
	b, err := json.Marshal(resp)
	if err != nil {
		c.s.log.Error("marshal response", "err", err)
		c.endOp(op, nil)
		return
	}
	c.endOpResult(op, b)
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
	c.queueLocked(c.nextFrame(nil, op.id, payload))
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
			c.queueLocked(c.errorFrame(op.id, errs))
			if c.legacy {
				c.queueLocked(c.completeFrame(op.id))
			}
		} else {
			c.queueLocked(c.completeFrame(op.id))
		}
		c.wakeLocked()
	}
	c.mu.Unlock()
	if st != nil {
		st.Close()
	}
}

// endOpResult ends op with one result (a {"errors": …} body, say), then
// complete. Nothing is sent if the client completed it already.
func (c *wsConn) endOpResult(op *wsOp, result []byte) {
	c.mu.Lock()
	if c.ops.get(op.id) != op {
		c.mu.Unlock()
		return
	}
	c.ops.remove(op.id)
	st := op.st
	if !c.closing {
		c.queueLocked(c.nextFrame(nil, op.id, result))
		c.queueLocked(c.completeFrame(op.id))
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
	c.queueLocked(c.errorFrame(id, errs))
	if c.legacy {
		c.queueLocked(c.completeFrame(id))
	}
	c.wakeLocked()
}

// abort closes the socket; the reader then returns and tears down.
func (c *wsConn) abort() {
	c.mu.Lock()
	c.closed = true
	c.writing = false
	c.awake.Store(false)
	c.mu.Unlock()
	_ = c.nc.Close()
	c.unpark()
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

// tickSlack is half the wheel's period: a keep-alive due between two ticks
// goes out at the nearer one, not a whole period late.
const tickSlack = 500 * time.Millisecond

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
		// Liveness is anything read, pongs included: a client that sends
		// nothing (subscriptions-transport-ws) answers our pings.
		idle := now.Sub(time.Unix(0, c.lastRead.Load()))
		if idle > 3*cfg.PingInterval {
			c.abort()
			return
		}
		c.mu.Lock()
		due := false
		// A ping frame, on either subprotocol, once per interval while
		// the client is silent; browsers and Node answer it by themselves.
		if idle > cfg.PingInterval && now.Sub(c.lastPing) > cfg.PingInterval-tickSlack {
			c.pingDue, c.lastPing, due = true, now, true
		}
		// A protocol keep-alive for clients that watch messages: `ka`
		// every KeepAlive on legacy, a `ping` message after KeepAlive
		// without a write on graphql-transport-ws.
		if c.lastKA.IsZero() {
			c.lastKA = now
		}
		if acked && now.Sub(c.lastKA) > cfg.KeepAlive-tickSlack &&
			(c.legacy || now.Sub(time.Unix(0, c.lastWrite.Load())) > cfg.KeepAlive-tickSlack) {
			c.kaDue, c.lastKA, due = true, now, true
		}
		if due {
			c.wakeLocked()
		}
		c.mu.Unlock()
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
