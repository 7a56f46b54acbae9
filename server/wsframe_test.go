package server

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/gobwas/ws"
)

// clientFrame encodes one masked client frame, as a browser sends it.
func clientFrame(fin bool, op ws.OpCode, p []byte) []byte {
	var b bytes.Buffer
	h := ws.Header{Fin: fin, OpCode: op, Length: int64(len(p)), Masked: true, Mask: [4]byte{1, 2, 3, 4}}
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err)
	}
	m := append([]byte(nil), p...)
	ws.Cipher(m, h.Mask, 0)
	b.Write(m)
	return b.Bytes()
}

func TestFrameReader(t *testing.T) {
	text := clientFrame(true, ws.OpText, []byte(`{"type":"ping"}`))
	unmasked := func() []byte {
		var b bytes.Buffer
		_ = ws.WriteHeader(&b, ws.Header{Fin: true, OpCode: ws.OpText, Length: 1})
		b.WriteByte('x')
		return b.Bytes()
	}()
	rsv := clientFrame(true, ws.OpText, []byte("x"))
	rsv[0] |= 0x40
	for _, tc := range []struct {
		name    string
		in      []byte
		wantOps []ws.OpCode
		wantMsg []string
		wantErr error
	}{
		{"one text message", text, []ws.OpCode{ws.OpText}, []string{`{"type":"ping"}`}, io.EOF},
		{"two messages", append(append([]byte{}, text...), text...), []ws.OpCode{ws.OpText, ws.OpText}, []string{`{"type":"ping"}`, `{"type":"ping"}`}, io.EOF},
		{"ping then text", append(clientFrame(true, ws.OpPing, []byte("hi")), text...), []ws.OpCode{ws.OpPing, ws.OpText}, []string{"hi", `{"type":"ping"}`}, io.EOF},
		{"unmasked", unmasked, nil, nil, errFrameProtocol},
		{"reserved bits", rsv, nil, nil, errFrameProtocol},
		{"control over 125 bytes", clientFrame(true, ws.OpPing, make([]byte, 126)), nil, nil, errFrameProtocol},
		{"fragmented control", clientFrame(false, ws.OpPing, nil), nil, nil, errFrameProtocol},
		{"continuation first", clientFrame(true, ws.OpContinuation, []byte("x")), nil, nil, errFrameProtocol},
		{"new message inside a fragmented one", append(clientFrame(false, ws.OpText, []byte("a")), clientFrame(true, ws.OpText, []byte("b"))...), nil, nil, errFrameProtocol},
		{"reserved data opcode", clientFrame(true, 3, []byte("x")), nil, nil, errFrameProtocol},
		{"truncated payload", clientFrame(true, ws.OpText, []byte("hello"))[:4], nil, nil, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := newFrameReader(bytes.NewReader(tc.in), 1024, true)
			for i := 0; ; i++ {
				op, p, err := fr.next()
				if err != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("frame %d: err %v, want %v", i, err, tc.wantErr)
					}
					if i != len(tc.wantOps) {
						t.Fatalf("got %d frames before %v, want %d", i, err, len(tc.wantOps))
					}
					return
				}
				if i >= len(tc.wantOps) || op != tc.wantOps[i] || string(p) != tc.wantMsg[i] {
					t.Fatalf("frame %d: %v %q", i, op, p)
				}
			}
		})
	}
}

func TestFrameReader_tooBig(t *testing.T) {
	fr := newFrameReader(bytes.NewReader(clientFrame(true, ws.OpText, make([]byte, 1025))), 1024, true)
	if _, _, err := fr.next(); !errors.Is(err, errFrameTooBig) {
		t.Fatalf("err %v, want errFrameTooBig", err)
	}
}

// TestFrame checks the server's frames parse back with every length
// encoding (7-bit, 16-bit, 64-bit).
func TestFrame(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 1 << 15, 65535, 65536, 70000} {
		p := bytes.Repeat([]byte{'a'}, n)
		f := frame([]byte("prefix"), ws.OpText, p)
		if string(f[:6]) != "prefix" {
			t.Fatalf("%d: prefix overwritten", n)
		}
		r := bytes.NewReader(f[6:])
		h, err := ws.ReadHeader(r)
		if err != nil || !h.Fin || h.OpCode != ws.OpText || h.Masked || h.Length != int64(n) {
			t.Fatalf("%d: header %+v, %v", n, h, err)
		}
		rest, _ := io.ReadAll(r)
		if !bytes.Equal(rest, p) {
			t.Fatalf("%d: payload differs", n)
		}
	}
}

// TestFrameReader_fragments reassembles a message split into fragments of
// every size, with a control frame between fragments (RFC 6455 5.4).
func TestFrameReader_fragments(t *testing.T) {
	msg := []byte(`{"type":"subscribe","id":"1","payload":{"query":"{ me { user } }"}}`)
	for size := 1; size < len(msg); size++ {
		var in []byte
		for i := 0; i < len(msg); i += size {
			op := ws.OpContinuation
			if i == 0 {
				op = ws.OpText
			}
			end := min(i+size, len(msg))
			in = append(in, clientFrame(end == len(msg), op, msg[i:end])...)
			if i == 0 {
				in = append(in, clientFrame(true, ws.OpPing, []byte("p"))...)
			}
		}
		fr := newFrameReader(bytes.NewReader(in), 1024, true)
		op, p, err := fr.next()
		if err != nil || op != ws.OpPing {
			t.Fatalf("size %d: first %v %q %v, want the ping", size, op, p, err)
		}
		op, p, err = fr.next()
		if err != nil || op != ws.OpText || !bytes.Equal(p, msg) {
			t.Fatalf("size %d: %v %q %v", size, op, p, err)
		}
	}
}

func TestFrameReader_limitsAndUTF8(t *testing.T) {
	over := append(clientFrame(false, ws.OpText, make([]byte, 600)), clientFrame(true, ws.OpContinuation, make([]byte, 600))...)
	var msb bytes.Buffer
	msb.Write([]byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4})
	// é split across two fragments is valid; a lone continuation byte is not.
	splitRune := append(clientFrame(false, ws.OpText, []byte{'"', 0xc3}), clientFrame(true, ws.OpContinuation, []byte{0xa9, '"'})...)
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"fragments over the limit", over, errFrameTooBig},
		{"length with the top bit set", msb.Bytes(), errFrameProtocol},
		{"text that is not UTF-8", clientFrame(true, ws.OpText, []byte{'"', 0xeb, '"'}), errFrameUTF8},
		{"binary is not checked", clientFrame(true, ws.OpBinary, []byte{0xeb}), nil},
		{"a rune split across fragments", splitRune, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := newFrameReader(bytes.NewReader(tc.in), 1024, true).next()
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestParseClose(t *testing.T) {
	body := func(code uint16, reason string) []byte {
		return append([]byte{byte(code >> 8), byte(code)}, reason...)
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		want    ws.StatusCode
		wantErr error
	}{
		{"empty", nil, 1000, nil},
		{"normal", body(1000, "bye"), 1000, nil},
		{"application", body(4000, ""), 4000, nil},
		{"try again later", body(1013, ""), 1013, nil},
		{"one byte", []byte{3}, 0, errFrameProtocol},
		{"1005 is never sent", body(1005, ""), 0, errFrameProtocol},
		{"1006 is never sent", body(1006, ""), 0, errFrameProtocol},
		{"1015 is never sent", body(1015, ""), 0, errFrameProtocol},
		{"1004 reserved", body(1004, ""), 0, errFrameProtocol},
		{"999", body(999, ""), 0, errFrameProtocol},
		{"2999 unassigned", body(2999, ""), 0, errFrameProtocol},
		{"5000", body(5000, ""), 0, errFrameProtocol},
		{"reason not UTF-8", body(1000, "\xff"), 0, errFrameUTF8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, err := parseClose(tc.in)
			if !errors.Is(err, tc.wantErr) || err == nil && code != tc.want {
				t.Fatalf("%d, %v; want %d, %v", code, err, tc.want, tc.wantErr)
			}
		})
	}
}
