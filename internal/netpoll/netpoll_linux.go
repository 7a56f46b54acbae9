package netpoll

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// pollImpl is an epoll instance, itself waited on through Go's runtime
// poller (an epoll descriptor is readable while it has events): the
// waiting goroutine sleeps like any goroutine blocked in Read, with no
// thread held in a blocking epoll_wait, and each look is a non-blocking
// epoll_wait.
type pollImpl struct {
	f      *os.File
	rc     syscall.RawConn
	events [128]unix.EpollEvent // the waiting goroutine's only
}

func (p *pollImpl) open() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		return err
	}
	p.f = os.NewFile(uintptr(epfd), "epoll")
	if p.rc, err = p.f.SyscallConn(); err != nil {
		_ = p.f.Close()
		return err
	}
	return nil
}

// arm registers fd for one wake-up with tok, or re-arms it: a one-shot
// registration stays in the set, disarmed, after it fires, until the
// socket is closed. Control keeps the epoll descriptor open meanwhile.
func (p *pollImpl) arm(fd int, tok uint64) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(uint32(tok)), Pad: int32(uint32(tok >> 32))}
	var err error
	if cerr := p.rc.Control(func(epfd uintptr) {
		err = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_MOD, fd, &ev)
		if errors.Is(err, unix.ENOENT) {
			err = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_ADD, fd, &ev)
		}
	}); cerr != nil {
		return cerr
	}
	return err
}

// wait blocks until some registrations fire and appends their tokens to
// toks; stop is true once the poller is closed.
func (p *pollImpl) wait(toks []uint64) (_ []uint64, stop bool) {
	var werr error
	err := p.rc.Read(func(epfd uintptr) bool {
		n, err := unix.EpollWait(int(epfd), p.events[:], 0)
		if errors.Is(err, unix.EINTR) || (err == nil && n == 0) {
			return false // nothing yet: sleep until the descriptor is readable
		}
		if err != nil {
			werr = err
			return true
		}
		for _, ev := range p.events[:n] {
			toks = append(toks, uint64(uint32(ev.Fd))|uint64(uint32(ev.Pad))<<32)
		}
		return true
	})
	return toks, err != nil || werr != nil
}

// interrupt wakes wait, which then reports stop: closing the file ends a
// Read blocked on it.
func (p *pollImpl) interrupt() { _ = p.f.Close() }

func (p *pollImpl) close() error { return nil }
