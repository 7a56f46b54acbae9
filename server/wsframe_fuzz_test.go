package server

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/gobwas/ws"
)

// frameEvent is what the reader returned once.
type frameEvent struct {
	op  ws.OpCode
	p   string
	err error
}

// readAll runs a frameReader over rd until its first error.
func readAll(rd io.Reader, max int) []frameEvent {
	fr := newFrameReader(rd, max, true)
	var out []frameEvent
	for range 64 {
		op, p, err := fr.next()
		if err != nil {
			// Only the class of error matters: io errors differ in
			// wording with how the input is split.
			switch {
			case errors.Is(err, errFrameProtocol), errors.Is(err, errFrameTooBig), errors.Is(err, errFrameUTF8):
			default:
				err = io.EOF
			}
			return append(out, frameEvent{err: err})
		}
		out = append(out, frameEvent{op: op, p: string(p)})
	}
	return out
}

// splitReader returns the first i bytes, then the rest: a frame split
// across two TCP reads at i.
type splitReader struct {
	parts [][]byte
}

func (s *splitReader) Read(p []byte) (int, error) {
	for len(s.parts) > 0 && len(s.parts[0]) == 0 {
		s.parts = s.parts[1:]
	}
	if len(s.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.parts[0])
	s.parts[0] = s.parts[0][n:]
	return n, nil
}

// FuzzFrameReader feeds the frame codec arbitrary bytes, whole, split in
// two at every byte boundary (as nats-server fuzzes its parser), and one
// byte per read: it must never panic, must return the same frames and the
// same class of error whatever the split, never a message over the limit,
// never control payloads over 125 bytes, and text only as UTF-8.
func FuzzFrameReader(f *testing.F) {
	for _, seed := range [][]byte{
		clientFrame(true, ws.OpText, []byte(`{"type":"connection_init"}`)),
		append(clientFrame(false, ws.OpText, []byte(`{"ty`)), clientFrame(true, ws.OpContinuation, []byte(`pe":"ping"}`))...),
		append(clientFrame(false, ws.OpText, []byte("a")), append(clientFrame(true, ws.OpPing, []byte("p")), clientFrame(true, ws.OpContinuation, []byte("b"))...)...),
		clientFrame(true, ws.OpClose, []byte{0x03, 0xed}),
		clientFrame(true, ws.OpText, []byte{0xeb}),
		clientFrame(true, ws.OpBinary, []byte{0, 1, 2}),
		{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4},
		{0x81, 0x80 | 126, 0xff, 0xff, 1, 2, 3, 4},
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},
	} {
		f.Add(seed)
	}
	const max = 256
	f.Fuzz(func(t *testing.T, in []byte) {
		whole := readAll(bytes.NewReader(in), max)
		for _, ev := range whole {
			if len(ev.p) > max || ev.op.IsControl() && len(ev.p) > 125 {
				t.Fatalf("returned %d bytes (%v)", len(ev.p), ev.op)
			}
		}
		same := func(how string, got []frameEvent) {
			if len(got) != len(whole) {
				t.Fatalf("%s: %d events, whole gave %d", how, len(got), len(whole))
			}
			for i := range got {
				if got[i].op != whole[i].op || got[i].p != whole[i].p || !errors.Is(got[i].err, whole[i].err) {
					t.Fatalf("%s: event %d differs: %+v vs %+v", how, i, got[i], whole[i])
				}
			}
		}
		for i := 1; i < len(in); i++ {
			same("split", readAll(&splitReader{parts: [][]byte{bytes.Clone(in[:i]), bytes.Clone(in[i:])}}, max))
		}
		same("one byte per read", readAll(iotest.OneByteReader(bytes.NewReader(in)), max))
	})
}
