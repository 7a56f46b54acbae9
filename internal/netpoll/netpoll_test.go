package netpoll_test

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"meshgate/internal/netpoll"
)

// pair is a connected loopback TCP pair: c is the side waited on.
func pair(t *testing.T) (c, peer net.Conn, rc syscall.RawConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	rc, err = c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return c, peer, rc
}

func newPoller(t *testing.T) *netpoll.Poller {
	t.Helper()
	p, err := netpoll.New()
	if errors.Is(err, netpoll.ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func fired(t *testing.T, ch <-chan struct{}, want bool) {
	t.Helper()
	if !want {
		select {
		case <-ch:
			t.Fatal("callback ran, want none")
		case <-time.After(100 * time.Millisecond):
		}
		return
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("callback did not run")
	}
}

// TestPoller_WakesOncePerWait: a wait fires when the socket becomes
// readable, once; re-armed, it fires again for data still unread (level
// triggered), and for a hang-up.
func TestPoller_WakesOncePerWait(t *testing.T) {
	p := newPoller(t)
	c, peer, rc := pair(t)
	ch := make(chan struct{}, 4)
	wake := func() { ch <- struct{}{} }
	if _, err := p.Wait(rc, wake); err != nil {
		t.Fatal(err)
	}
	fired(t, ch, false) // idle: nothing
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	fired(t, ch, true)
	fired(t, ch, false) // one-shot: the unread byte does not fire again
	if _, err := p.Wait(rc, wake); err != nil {
		t.Fatal(err)
	}
	fired(t, ch, true) // re-armed with the byte still there
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(rc, wake); err != nil {
		t.Fatal(err)
	}
	fired(t, ch, false)
	peer.Close()
	fired(t, ch, true) // a hang-up wakes
	if p.Waiting() != 0 {
		t.Fatalf("%d waiting", p.Waiting())
	}
}

// TestPoller_CancelAndClose: a cancelled wait never runs its callback;
// closing the socket is not reported (the caller cancels); Close runs
// every wait still pending.
func TestPoller_CancelAndClose(t *testing.T) {
	p := newPoller(t)
	_, peer, rc := pair(t)
	ch := make(chan struct{}, 4)
	tok, err := p.Wait(rc, func() { ch <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	if !p.Cancel(tok) {
		t.Fatal("cancel of a pending wait: false")
	}
	if p.Cancel(tok) {
		t.Fatal("second cancel: true")
	}
	_, _ = peer.Write([]byte("x"))
	fired(t, ch, false)

	c2, _, rc2 := pair(t)
	if _, err := p.Wait(rc2, func() { ch <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if _, err := p.Wait(rc2, func() {}); err == nil {
		t.Fatal("wait on a closed socket succeeded")
	}
	if p.Waiting() != 1 {
		t.Fatalf("%d waiting, want 1", p.Waiting())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	fired(t, ch, true) // Close ran the pending one
	if _, err := p.Wait(rc, func() {}); !errors.Is(err, netpoll.ErrClosed) {
		t.Fatalf("wait after close: %v", err)
	}
}

// TestPoller_ReusedDescriptor: a socket closed while waited on, its
// descriptor number taken at once by another socket: the new socket's
// wait is its own, and the old token never fires.
func TestPoller_ReusedDescriptor(t *testing.T) {
	p := newPoller(t)
	old, _, rcOld := pair(t)
	oldFired := make(chan struct{}, 1)
	tok, err := p.Wait(rcOld, func() { oldFired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	p.Cancel(tok)
	for range 4 { // likely to reuse old's number
		c, peer, rc := pair(t)
		ch := make(chan struct{}, 1)
		if _, err := p.Wait(rc, func() { ch <- struct{}{} }); err != nil {
			t.Fatal(err)
		}
		_, _ = peer.Write([]byte("x"))
		fired(t, ch, true)
		c.Close()
	}
	fired(t, oldFired, false)
}

// TestPoller_ManySockets: each of many sockets wakes its own callback.
func TestPoller_ManySockets(t *testing.T) {
	p := newPoller(t)
	const n = 300
	ch := make(chan int, n)
	peers := make([]net.Conn, n)
	for i := range n {
		_, peer, rc := pair(t)
		peers[i] = peer
		if _, err := p.Wait(rc, func() { ch <- i }); err != nil {
			t.Fatal(err)
		}
	}
	for i := n - 1; i >= 0; i-- {
		_, _ = peers[i].Write([]byte("x"))
	}
	seen := make([]bool, n)
	for range n {
		select {
		case i := <-ch:
			if seen[i] {
				t.Fatalf("socket %d woke twice", i)
			}
			seen[i] = true
		case <-time.After(10 * time.Second):
			t.Fatal("not every socket woke")
		}
	}
}
