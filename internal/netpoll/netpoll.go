package netpoll

import (
	"errors"
	"sync"
	"syscall"
)

// ErrUnsupported is returned by New where there is no epoll (not Linux).
var ErrUnsupported = errors.New("netpoll: not supported on this system")

// ErrClosed is returned by Wait once the poller is closed.
var ErrClosed = errors.New("netpoll: poller closed")

// Token names one pending wait, for Cancel. The zero Token names none.
type Token uint64

// Poller waits for readiness of many sockets on one goroutine. Safe for
// concurrent use.
type Poller struct {
	impl pollImpl

	mu      sync.Mutex
	next    Token
	waiting map[Token]func()
	closed  bool
	done    chan struct{}
}

// New starts a poller and its goroutine; Close stops it.
func New() (*Poller, error) {
	p := &Poller{waiting: make(map[Token]func()), done: make(chan struct{})}
	if err := p.impl.open(); err != nil {
		return nil, err
	}
	go p.loop()
	return p, nil
}

// Wait arms a one-shot wait on rc's socket: fn runs on a new goroutine
// once the socket is readable, has hung up or is in error, or when the
// poller closes; unless Cancel takes the wait first. fn must not be
// called by the caller after a successful Wait unless Cancel returned
// true. The callback may run before Wait returns.
func (p *Poller) Wait(rc syscall.RawConn, fn func()) (Token, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, ErrClosed
	}
	p.next++
	tok := p.next
	p.waiting[tok] = fn
	p.mu.Unlock()
	var armErr error
	// Control holds the descriptor open while it runs: the number armed
	// is this socket's, not a successor's.
	err := rc.Control(func(fd uintptr) { armErr = p.impl.arm(int(fd), uint64(tok)) })
	if err == nil {
		err = armErr
	}
	if err != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, ok := p.waiting[tok]; !ok {
			// Close took the wait meanwhile (the arm failed on its
			// closed descriptor): fn runs, as for any pending wait.
			return tok, nil
		}
		delete(p.waiting, tok)
		return 0, err
	}
	return tok, nil
}

// Cancel takes back the pending wait tok: true means its callback has not
// run and never will, so the caller now owns what it would have done;
// false means it has run or is about to.
func (p *Poller) Cancel(tok Token) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.waiting[tok]; !ok {
		return false
	}
	delete(p.waiting, tok)
	return true
}

// Waiting is how many waits are pending.
func (p *Poller) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiting)
}

// Close stops the poller: every pending callback runs (each on its own
// goroutine), and later Waits fail with ErrClosed. Safe to call twice.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.impl.interrupt()
	<-p.done
	p.mu.Lock()
	rest := p.waiting
	p.waiting = make(map[Token]func())
	p.mu.Unlock()
	for _, fn := range rest {
		go fn()
	}
	return p.impl.close()
}

// fire runs the callback of each token that is still waiting.
func (p *Poller) fire(toks []uint64) {
	p.mu.Lock()
	var fns []func()
	for _, t := range toks {
		if fn, ok := p.waiting[Token(t)]; ok {
			delete(p.waiting, Token(t))
			fns = append(fns, fn)
		}
	}
	p.mu.Unlock()
	for _, fn := range fns {
		go fn()
	}
}

func (p *Poller) loop() {
	defer close(p.done)
	buf := make([]uint64, 0, 128)
	for {
		toks, stop := p.impl.wait(buf[:0])
		p.fire(toks)
		if stop {
			return
		}
	}
}
