package netpoll

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// pollImpl is epoll, with an eventfd (token 0) to interrupt the wait.
type pollImpl struct {
	epfd, evfd int
	events     [128]unix.EpollEvent // the waiting goroutine's only
}

func (p *pollImpl) open() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(evfd)
		return err
	}
	p.epfd, p.evfd = epfd, evfd
	return nil
}

// arm registers fd for one wake-up with tok, or re-arms it: a one-shot
// registration stays in the set, disarmed, after it fires, until the
// socket is closed.
func (p *pollImpl) arm(fd int, tok uint64) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(uint32(tok)), Pad: int32(uint32(tok >> 32))}
	err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
	if errors.Is(err, unix.ENOENT) {
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	}
	return err
}

// wait blocks until some registration fires and appends their tokens to
// toks; stop is true once interrupt was called.
func (p *pollImpl) wait(toks []uint64) (_ []uint64, stop bool) {
	for {
		n, err := unix.EpollWait(p.epfd, p.events[:], -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return toks, true // the descriptor is broken: nothing more will fire
		}
		for _, ev := range p.events[:n] {
			tok := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if tok == 0 {
				stop = true
				continue
			}
			toks = append(toks, tok)
		}
		return toks, stop
	}
}

func (p *pollImpl) interrupt() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(p.evfd, one[:])
}

func (p *pollImpl) close() error {
	return errors.Join(unix.Close(p.epfd), unix.Close(p.evfd))
}
