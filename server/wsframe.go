package server

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// This file is the WebSocket frame codec (RFC 6455): reading client frames
// into control frames and whole messages, and writing server frames. It
// knows nothing of the GraphQL subprotocols spoken over it.

// errFrameProtocol is a frame that breaks RFC 6455 (unmasked, reserved
// bits, a bad control frame, a continuation out of place): close 1002.
var errFrameProtocol = errors.New("websocket: protocol error")

// errFrameTooBig is a message longer than the reader's limit: close 1009.
var errFrameTooBig = errors.New("websocket: message too big")

// errFrameUTF8 is a text message or close reason that is not UTF-8: close
// 1007 (RFC 6455 8.1).
var errFrameUTF8 = errors.New("websocket: invalid UTF-8")

// frameReader reads a client's frames. next returns each control frame as
// it comes and each data message once its last fragment is in. Only one
// goroutine may use it.
type frameReader struct {
	rd  io.Reader
	cr  countingReader // what rd reads from; counts the current frame's bytes
	br  *bufio.Reader  // under cr, if buffered
	pre *prefixReader  // the bytes read ahead by net/http, if any
	max int            // the longest message, in bytes
	// onFrame, if set, is called after each frame header is read.
	onFrame func()

	hdr   [ws.MaxHeaderSize - 2]byte
	msg   []byte // the message being reassembled, nil between messages
	msgOp ws.OpCode
}

// frameReadBuffer is the frame reader's buffer. Without one, a frame
// cost three reads (its first two bytes, the length and mask, the
// payload); with it, a header and the start of the payload come in one
// read and the rest of the payload goes straight into the message, so a
// frame costs two, one if it is short. A bigger buffer would save the
// second read of most messages, but every idle connection keeps it.
const frameReadBuffer = 64

// newFrameReader reads frames from rd. buffered puts frameReadBuffer in
// front of it: for a socket, not for a TLS connection, which reads whole
// records into a buffer of its own.
func newFrameReader(rd io.Reader, max int, buffered bool) *frameReader {
	fr := &frameReader{max: max}
	fr.pre, _ = rd.(*prefixReader)
	if buffered {
		fr.br = bufio.NewReaderSize(rd, frameReadBuffer)
		rd = fr.br
	}
	fr.cr.r = rd
	fr.rd = &fr.cr
	return fr
}

// countingReader counts the bytes read through it since n was zeroed.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// idle reports whether the reader is between frames, no byte of the next
// one read, and holds no input: the next byte it returns comes from below
// it. Only the reader's goroutine may call it.
func (fr *frameReader) idle() bool {
	return fr.msg == nil && fr.cr.n == 0 && (fr.br == nil || fr.br.Buffered() == 0) && (fr.pre == nil || len(fr.pre.buf) == 0)
}

// prefixReader returns buf, then reads r: a hijacked connection's bytes
// that net/http had read ahead, then the connection.
type prefixReader struct {
	buf []byte
	r   io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.buf) == 0 {
		return p.r.Read(b)
	}
	n := copy(b, p.buf)
	p.buf = p.buf[n:]
	if len(p.buf) == 0 {
		p.buf = nil
	}
	return n, nil
}

// next returns the next control frame (op is a control opcode, p at most
// 125 bytes) or the next whole data message (op is OpText or OpBinary),
// unmasked; a text message is valid UTF-8. It fails with errFrameProtocol,
// errFrameTooBig, errFrameUTF8 or the reader's error. The memory it holds
// is at most the limit: a message's buffer grows with the fragments
// actually received, checked against the limit before each is read.
func (fr *frameReader) next() (op ws.OpCode, p []byte, err error) {
	for {
		fr.cr.n = 0
		h, err := ws.ReadHeaderBuffer(fr.rd, fr.hdr[:])
		if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
			return 0, nil, errFrameProtocol
		}
		if err != nil {
			return 0, nil, err
		}
		if fr.onFrame != nil {
			fr.onFrame()
		}
		if !h.Masked || h.Rsv != 0 {
			return 0, nil, errFrameProtocol
		}
		if h.OpCode.IsControl() {
			if h.Length > 125 || !h.Fin {
				return 0, nil, errFrameProtocol
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(fr.rd, p); err != nil {
				return 0, nil, err
			}
			ws.Cipher(p, h.Mask, 0)
			return h.OpCode, p, nil
		}
		switch {
		case h.OpCode == ws.OpContinuation && fr.msg == nil,
			h.OpCode != ws.OpContinuation && fr.msg != nil:
			return 0, nil, errFrameProtocol
		case h.OpCode != ws.OpContinuation:
			fr.msgOp = h.OpCode
			fr.msg = make([]byte, 0, min(int(h.Length), fr.max))
		}
		if int64(len(fr.msg))+h.Length > int64(fr.max) {
			return 0, nil, errFrameTooBig
		}
		n := len(fr.msg)
		fr.msg = slices.Grow(fr.msg, int(h.Length))[:n+int(h.Length)]
		if _, err := io.ReadFull(fr.rd, fr.msg[n:]); err != nil {
			return 0, nil, err
		}
		ws.Cipher(fr.msg[n:], h.Mask, 0)
		if !h.Fin {
			continue
		}
		data := fr.msg
		fr.msg = nil
		if fr.msgOp != ws.OpText && fr.msgOp != ws.OpBinary {
			return 0, nil, errFrameProtocol
		}
		if fr.msgOp == ws.OpText && !utf8.Valid(data) {
			return 0, nil, errFrameUTF8
		}
		return fr.msgOp, data, nil
	}
}

// parseClose reads a close frame's body (RFC 6455 5.5.1, 7.4): empty means
// 1000; otherwise a code an endpoint may send (1000-1003, 1007-1014,
// 3000-4999) and a UTF-8 reason. 1005, 1006 and 1015 are never sent on the
// wire, so a peer that sends them is broken: errFrameProtocol.
func parseClose(p []byte) (ws.StatusCode, error) {
	if len(p) == 0 {
		return ws.StatusNormalClosure, nil
	}
	if len(p) == 1 {
		return 0, errFrameProtocol
	}
	code, reason := ws.ParseCloseFrameData(p)
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
	default:
		return 0, errFrameProtocol
	}
	if !utf8.ValidString(reason) {
		return 0, errFrameUTF8
	}
	return code, nil
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
