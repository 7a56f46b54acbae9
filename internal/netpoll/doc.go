// Package netpoll runs a callback when an idle socket becomes readable, so
// a server holding many idle connections need not keep a goroutine (and
// its stack) blocked in Read for each one. It is the pattern of mail.ru's
// "A Million WebSockets and Go": one epoll instance, one goroutine waiting
// on it (through Go's own poller, so no thread is held), and a goroutine
// started per wake-up.
//
// It knows nothing of the protocol on the socket. It must not be given a
// socket that holds buffered input above the kernel (a bufio.Reader's or a
// TLS record layer's): the kernel cannot see that input, so nothing would
// wake. The caller checks that.
//
// Waits are one-shot: a callback runs at most once per Wait, on a goroutine
// of its own, after which the socket is disarmed until the next Wait. The
// socket's registration is never removed by file descriptor number (a
// closed descriptor's number can be reused at once by another socket);
// closing the socket removes it from epoll, and a closed socket's pending
// wait is ended by Cancel.
//
// Lock order: Poller.mu is a leaf; callbacks run with no lock held.
package netpoll
