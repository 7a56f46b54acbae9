package server

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"sync"
	"unsafe"
)

// This file looks inside crypto/tls's Conn for two things its API does not
// offer: whether it holds input the kernel cannot see (a parked reader
// would never wake for it), and letting go of the buffers its handshake
// grew (golang/go#43563: a Conn keeps them for its whole life, ≈3.3 KiB
// of every idle connection, the ClientHello with its post-quantum key
// share and the records it came in).
//
// It reads three fields by name and type, checked once against the Go
// release we build with; if any is missing or has changed type, tlsIdle
// answers "not idle" and nothing is released: the connection keeps its
// reader goroutine and its buffers, as it would without this file.
// TestTLSIdle_FieldsFound fails on a Go release where that happens.

// tlsLayout is where the fields are in a tls.Conn.
type tlsLayout struct {
	ok                    bool
	rawInput, input, hand uintptr // offsets
}

var tlsFields = sync.OnceValue(func() tlsLayout {
	t := reflect.TypeFor[tls.Conn]()
	off := func(name string, want reflect.Type) (uintptr, bool) {
		f, ok := t.FieldByName(name)
		return f.Offset, ok && f.Type == want && len(f.Index) == 1
	}
	var l tlsLayout
	var ok1, ok2, ok3 bool
	l.rawInput, ok1 = off("rawInput", reflect.TypeFor[bytes.Buffer]()) // records read, not yet decrypted
	l.input, ok2 = off("input", reflect.TypeFor[bytes.Reader]())       // plaintext not yet returned by Read
	l.hand, ok3 = off("hand", reflect.TypeFor[bytes.Buffer]())         // handshake messages not yet processed
	l.ok = ok1 && ok2 && ok3
	return l
})

// tlsIdle reports whether tc holds no input of its own: no record or part
// of one read from the socket, no plaintext or handshake message waiting.
// If it does not, and release is set, it drops the buffers that held
// them, to be allocated again, small, by the next read.
//
// Only the goroutine that reads tc may call it, and only between Reads,
// after the handshake (net/http completes it before any handler runs):
// crypto/tls touches these fields only while reading (under its input
// lock) or during a handshake.
func tlsIdle(tc *tls.Conn, release bool) bool {
	l := tlsFields()
	if !l.ok {
		return false
	}
	base := unsafe.Pointer(tc)                                //nolint:gosec // G103: the fields' offsets and types are checked by tlsFields
	rawInput := (*bytes.Buffer)(unsafe.Add(base, l.rawInput)) //nolint:gosec // G103: offset and type checked by tlsFields
	input := (*bytes.Reader)(unsafe.Add(base, l.input))       //nolint:gosec // G103: as above
	hand := (*bytes.Buffer)(unsafe.Add(base, l.hand))         //nolint:gosec // G103: as above
	if rawInput.Len() != 0 || input.Len() != 0 || hand.Len() != 0 {
		return false
	}
	if release {
		// input still points into rawInput's array once read to its end.
		*rawInput, *input, *hand = bytes.Buffer{}, bytes.Reader{}, bytes.Buffer{}
	}
	return true
}
