package server

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"meshgate/shard"
)

// This file holds the connection's write side: the pending-frame queue,
// waking the shared writers, and the writeLoop that flushes frames and
// stream notifications in one write.

func (c *wsConn) sendJSON(msg string) { c.send(frame(nil, ws.OpText, []byte(msg))) }

// send queues a whole frame.
func (c *wsConn) send(f []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.queueLocked(f)
	c.wakeLocked()
}

// queueLocked appends a whole frame to ctrl. The invariant: ctrl holds at
// most WS.MaxQueuedBytes, or a single frame. A frame that would break it
// means the client is not reading what it asked for: what is queued is
// dropped and the connection closes with 1013 (its queues keep their
// notifications for a resume). c.mu must be held.
func (c *wsConn) queueLocked(f []byte) {
	if c.closing {
		return
	}
	if len(c.ctrl) > 0 && c.ctrlBytes+len(f) > c.s.cfg.WS.MaxQueuedBytes {
		clear(c.ctrl)
		c.ctrl, c.ctrlBytes = c.ctrl[:0], 0
		c.s.log.Info("websocket output queue full: closing", "max_queued_bytes", c.s.cfg.WS.MaxQueuedBytes)
		c.closeLocked(closeTryAgainLater, "output queue full: read faster, reconnect and resume with after")
		return
	}
	c.ctrl = append(c.ctrl, f)
	c.ctrlBytes += len(f)
}

// queuePong replaces any unanswered pong with one for the latest ping.
func (c *wsConn) queuePong(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.pong, c.hasPong = append(c.pong[:0], p...), true
	c.wakeLocked()
}

// closeWith queues a close frame; the writer sends it and closes the socket.
func (c *wsConn) closeWith(code ws.StatusCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

func (c *wsConn) closeLocked(code ws.StatusCode, reason string) {
	if c.closing {
		return
	}
	c.closing = true
	f := frame(nil, ws.OpClose, ws.NewCloseFrameBody(code, reason))
	c.ctrl = append(c.ctrl, f) // a close frame is always queued: at most 125 bytes
	c.ctrlBytes += len(f)
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
		if c.hasPong {
			buf = frame(buf, ws.OpPong, c.pong)
			c.hasPong = false
		}
		for _, f := range c.ctrl {
			buf = append(buf, f...)
		}
		clear(c.ctrl)
		c.ctrl, c.ctrlBytes = c.ctrl[:0], 0
		closing := c.closing
		if c.pingDue && !closing {
			c.pingDue = false
			buf = frame(buf, ws.OpPing, nil)
		}
		if c.kaDue && !closing {
			c.kaDue = false
			if c.legacy {
				buf = frame(buf, ws.OpText, []byte(`{"type":"ka"}`))
			} else {
				buf = frame(buf, ws.OpText, []byte(`{"type":"ping"}`))
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
			c.lastWrite.Store(c.s.cfg.Now().UnixNano())
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
			c.unpark() // a parked reader would not see the deadline
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
