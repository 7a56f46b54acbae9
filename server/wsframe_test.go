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
			fr := newFrameReader(bytes.NewReader(tc.in), 1024)
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
	fr := newFrameReader(bytes.NewReader(clientFrame(true, ws.OpText, make([]byte, 1025))), 1024)
	_, _, err := fr.next()
	var big *frameTooBigError
	if !errors.As(err, &big) || big.max != 1024 {
		t.Fatalf("err %v, want a frameTooBigError of 1024", err)
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
