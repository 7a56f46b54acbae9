package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"meshgate/shard"
	pb "meshgate/shard/cluster/peerpb"
)

// relayBuffer bounds what a relay holds for a slow reader; beyond it the
// relay stops reading and the queue's holder buffers (and, at worst,
// drops the oldest with OVERFLOW) as for any slow reader.
const relayBuffer = 4096

// stream is a reader of a queue wherever it is held: a local shard.Stream,
// or a relay of the holder's stream over gRPC. When the queue moves, the
// stream follows it from its cursor: no gap, no duplicate.
type stream struct {
	n    *Node
	p    shard.Principal
	name string
	l    shard.Listener

	mu     sync.Mutex
	local  *shard.Stream
	buf    []shard.Notification
	last   uint64 // seq of the newest notification a relay received, or that it started after
	err    error  // the stream's end, once buf is drained
	cancel context.CancelFunc
	space  chanListener // told when Next empties buf, or on Close
	closed bool
}

// Attach opens a reader on p's queue from seq after (acknowledging up to
// it), wherever the queue is held. l is told when Next has news.
func (n *Node) Attach(ctx context.Context, p shard.Principal, name string, after uint64, l shard.Listener) (shard.Reader, error) {
	s := &stream{n: n, p: p, name: name, l: l, space: chanListener{ch: make(chan struct{}, 1)}}
	hint := ""
	for range 5 { // each pass follows a move the holder reported
		moved, err := s.open(ctx, hint, after, false)
		if errors.Is(err, shard.ErrMoved) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if moved == "" {
			return s, nil
		}
		hint = moved
	}
	return nil, fmt.Errorf("%w: queue %s is moving between nodes; retry", shard.ErrUnavailable, name)
}

// open reads the queue where it is held (where: the node it moved to, if
// known) from cursor; resume: acknowledging nothing, for a stream that
// was reading elsewhere. It returns the node the queue moved to, if the
// holder says so, and shard.ErrMoved if the queue left here meanwhile.
func (s *stream) open(ctx context.Context, where string, cursor uint64, resume bool) (moved string, err error) {
	if where == "" {
		if where, err = s.n.holderOf(ctx, s.name, false); err != nil {
			return "", err
		}
	}
	if where != "" {
		return s.relay(ctx, where, cursor, resume)
	}
	attach := s.n.store.Attach
	if resume {
		attach = s.n.store.Resume
	}
	st, err := attach(ctx, s.p, s.name, cursor, s.l)
	if errors.Is(err, shard.ErrQueueNotFound) && s.n.tombOf(s.name) != "" {
		return "", fmt.Errorf("%w: queue %s left here while it was looked for", shard.ErrMoved, s.name)
	}
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.local = st
	}
	s.mu.Unlock()
	if closed {
		st.Close()
	}
	if resume {
		s.l.Notify() // Resume may have told l before Next read here
	}
	return "", nil
}

// relay opens the holder's stream from seq after. It returns the node the
// queue moved to, if the holder says so.
func (s *stream) relay(ctx context.Context, where string, after uint64, resume bool) (moved string, err error) {
	p := s.n.peer(where)
	if p == nil {
		return "", unavailable(where)
	}
	rctx, cancel := context.WithCancel(p.relays)
	stop := context.AfterFunc(ctx, cancel) // until the first message: the caller's deadline applies
	cs, err := p.client.Stream(rctx, &pb.StreamRequest{Principal: principalPB(s.p), Queue: s.name, After: after, Resume: resume, Ring: s.n.ring.Load().ID()})
	if err == nil {
		_, err = cs.Recv()
	}
	stop()
	if err != nil {
		cancel()
		if to, ok := movedTo(err); ok {
			return to, nil
		}
		if err = fromStatus(where, err); errors.Is(err, errNotHeld) {
			return "", fmt.Errorf("%w: %s", shard.ErrQueueNotFound, s.name) // asked, and nobody holds it
		}
		return "", err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		return "", nil
	}
	s.cancel, s.last = cancel, after
	s.mu.Unlock()
	s.n.stats.Relays.Add(1)
	go s.recv(cs)
	return "", nil
}

func movedTo(err error) (string, bool) {
	st := status.Convert(err)
	if st.Code() != codes.Aborted {
		return "", false
	}
	_, to, ok := strings.Cut(st.Message(), "moved|")
	return to, ok
}

// recv copies the holder's batches into buf until the relay ends, then
// follows the queue or ends the stream.
func (s *stream) recv(cs pb.Peer_StreamClient) {
	b, err := cs.Recv()
	for ; err == nil; b, err = cs.Recv() {
		s.mu.Lock()
		s.buf = notificationsOf(b.GetItems(), s.buf)
		if k := len(s.buf); k > 0 {
			s.last = s.buf[k-1].Seq
		}
		full := len(s.buf) >= relayBuffer
		s.mu.Unlock()
		s.l.Notify()
		if full {
			<-s.space.ch
		}
	}
	s.mu.Lock()
	closed, last := s.closed, s.last
	s.mu.Unlock()
	switch {
	case closed:
	case status.Code(err) == codes.NotFound:
		s.fail(shard.ErrQueueNotFound)
	default:
		hint, _ := movedTo(err)
		s.follow(last, hint)
	}
}

// follow re-opens the stream where its queue went, from cursor.
func (s *stream) follow(cursor uint64, hint string) {
	backoff := 50 * time.Millisecond
	for range 30 {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		moved, err := s.open(ctx, hint, cursor, true)
		cancel()
		if errors.Is(err, shard.ErrQueueNotFound) {
			s.fail(shard.ErrQueueNotFound)
			return
		}
		if err == nil && moved == "" {
			return
		}
		if hint = moved; hint == "" {
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
		}
	}
	s.fail(shard.ErrUnavailable)
}

func (s *stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.l.Notify()
}

// Next implements shard.Reader.
func (s *stream) Next(dst []shard.Notification, limit int) ([]shard.Notification, error) {
	s.mu.Lock()
	if st := s.local; st != nil {
		s.mu.Unlock()
		out, err := st.Next(dst, limit)
		if !errors.Is(err, shard.ErrMoved) {
			return out, err
		}
		cursor := st.Cursor()
		st.Close()
		s.mu.Lock()
		if s.local == st {
			s.local = nil
		}
		s.mu.Unlock()
		go s.follow(cursor, "") // it ends at once if s is closed
		return out, nil
	}
	defer s.mu.Unlock()
	k := min(limit, len(s.buf))
	dst = append(dst, s.buf[:k]...)
	clear(s.buf[:k])
	s.buf = s.buf[k:]
	if len(s.buf) == 0 {
		s.buf = nil
		s.space.Notify()
	}
	if k == 0 && s.err != nil {
		return dst, s.err
	}
	return dst, nil
}

// Lag is how far the reader is behind: its queue's backlog when local,
// the relay's buffer when relayed.
func (s *stream) Lag() uint64 {
	s.mu.Lock()
	st, k := s.local, len(s.buf)
	s.mu.Unlock()
	if st != nil {
		return st.Lag()
	}
	return uint64(k)
}

// Close implements shard.Reader. Safe to call twice: each step is.
func (s *stream) Close() {
	s.mu.Lock()
	s.closed = true
	st, cancel := s.local, s.cancel
	s.mu.Unlock()
	if st != nil {
		st.Close()
	}
	if cancel != nil {
		cancel()
	}
	s.space.Notify()
}

// dropRelays ends the relays reading from crashed nodes; their streams
// look for the queue again (and end with QUEUE_NOT_FOUND: it died there).
func (n *Node) dropRelays(crashed []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range crashed {
		if p := n.peers[c]; p != nil {
			p.endRelays()
		}
	}
}
