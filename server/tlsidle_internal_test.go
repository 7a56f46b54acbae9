package server

import (
	"bytes"
	"crypto/tls"
	"io"
	"meshgate/internal/certs"
	"net"
	"testing"
	"time"
	"unsafe"
)

// TestTLSIdle_FieldsFound: the crypto/tls fields tlsIdle reads exist with
// the types it expects. On a Go release where they do not, TLS
// connections are never parked and keep their handshake buffers; this
// test says so instead of the memory figures quietly doubling.
func TestTLSIdle_FieldsFound(t *testing.T) {
	if !tlsFields().ok {
		t.Fatal("crypto/tls.Conn has no rawInput/input/hand of the expected types: tlsidle.go needs updating for this Go release")
	}
}

// tlsPair is a handshaken TLS connection over loopback TCP: srv is the
// server's side, cli the client's.
func tlsPair(t *testing.T) (srv, cli *tls.Conn) {
	t.Helper()
	dir := t.TempDir()
	cert, key, _, _, err := certs.EnsureDevCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := certs.TLSConfig(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cli = tls.Client(raw, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // G402: a test's own self-signed certificate
	sraw, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	srv = tls.Server(sraw, cfg)
	t.Cleanup(func() { srv.Close(); cli.Close() })
	_ = srv.SetDeadline(time.Now().Add(10 * time.Second))
	_ = cli.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return srv, cli
}

// TestTLSIdle_HeldInputAndRelease: a connection holding plaintext or
// records not yet returned is not idle; one that has returned everything
// is, lets its buffers go, and reads on as before.
func TestTLSIdle_HeldInputAndRelease(t *testing.T) {
	srv, cli := tlsPair(t)
	// Two messages in one record: after reading the first, the second's
	// plaintext waits inside crypto/tls.
	if _, err := cli.Write([]byte("helloworld")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(srv, b); err != nil {
		t.Fatal(err)
	}
	if tlsIdle(srv, true) {
		t.Fatal("idle with plaintext waiting")
	}
	if _, err := io.ReadFull(srv, b); err != nil || string(b) != "world" {
		t.Fatalf("%q %v", b, err)
	}
	if !tlsIdle(srv, false) {
		t.Fatal("not idle with everything read")
	}
	// Two records in one segment: the second waits undecrypted.
	if _, err := cli.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Write([]byte("two")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // both records in the socket before the read
	b = make([]byte, 3)
	if _, err := io.ReadFull(srv, b); err != nil || string(b) != "one" {
		t.Fatalf("%q %v", b, err)
	}
	if tlsIdle(srv, true) {
		t.Fatal("idle with a record waiting")
	}
	if _, err := io.ReadFull(srv, b); err != nil || string(b) != "two" {
		t.Fatalf("%q %v", b, err)
	}
	// Everything read: idle, and the handshake's buffers go.
	l := tlsFields()
	rawInput := (*bytes.Buffer)(unsafe.Add(unsafe.Pointer(srv), l.rawInput)) //nolint:gosec // G103: as tlsIdle reads it
	hand := (*bytes.Buffer)(unsafe.Add(unsafe.Pointer(srv), l.hand))         //nolint:gosec // G103: as tlsIdle reads it
	if rawInput.Cap() == 0 || hand.Cap() == 0 {
		t.Fatalf("before release: rawInput cap %d, hand cap %d; the handshake grew both", rawInput.Cap(), hand.Cap())
	}
	if !tlsIdle(srv, true) {
		t.Fatal("not idle with everything read")
	}
	if rawInput.Cap() != 0 || hand.Cap() != 0 {
		t.Fatalf("after release: rawInput cap %d, hand cap %d, want 0", rawInput.Cap(), hand.Cap())
	}
	// And the connection reads and writes on.
	msg := bytes.Repeat([]byte("z"), 20000) // several records
	go func() { _, _ = cli.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(srv, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read after release: %v", err)
	}
	if _, err := srv.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	b = make([]byte, 2)
	if _, err := io.ReadFull(cli, b); err != nil || string(b) != "ok" {
		t.Fatalf("%q %v", b, err)
	}
}
