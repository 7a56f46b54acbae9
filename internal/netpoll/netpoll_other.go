//go:build !linux

package netpoll

type pollImpl struct{}

func (p *pollImpl) open() error                         { return ErrUnsupported }
func (p *pollImpl) arm(fd int, tok uint64) error        { return ErrUnsupported }
func (p *pollImpl) wait(toks []uint64) ([]uint64, bool) { return toks, true }
func (p *pollImpl) interrupt()                          {}
func (p *pollImpl) close() error                        { return nil }
