package host

import (
	"context"
	"errors"
	"sync"
	"time"

	pb "meshgate/plugins/proto"
	"meshgate/shard"
)

// sessions turns device activity into online and offline events. A
// device is online while it has a live stream or has read a queue within
// that queue's lease; it goes offline Grace after its last stream closes
// (unless it reads meanwhile), when the lease of its last read runs out,
// or when its last queue goes.
type sessions struct {
	h     *Host
	grace time.Duration
	now   func() time.Time

	mu      sync.Mutex
	devices map[[2]string]*device
}

type device struct {
	streams int
	until   time.Time // online at least until then without a stream
	online  bool
}

var _ shard.Observer = (*sessions)(nil)

func newSessions(h *Host, grace time.Duration, now func() time.Time) *sessions {
	return &sessions{h: h, grace: grace, now: now, devices: make(map[[2]string]*device)}
}

func (s *sessions) get(user, dev string) *device {
	k := [2]string{user, dev}
	d := s.devices[k]
	if d == nil {
		d = &device{}
		s.devices[k] = d
	}
	return d
}

func (s *sessions) StreamOpened(user, dev string) {
	s.mu.Lock()
	d := s.get(user, dev)
	d.streams++
	on := s.turnOnLocked(d)
	s.mu.Unlock()
	if on {
		s.broadcast(user, dev, true)
	}
}

func (s *sessions) StreamClosed(user, dev string) {
	s.mu.Lock()
	d := s.get(user, dev)
	d.streams--
	if d.streams <= 0 {
		// A streaming device goes offline with its stream (after the
		// grace period), whatever its queue's lease: reads after this
		// keep it online again.
		d.streams = 0
		d.until = s.now().Add(s.grace)
	}
	s.mu.Unlock()
}

func (s *sessions) Read(user, dev string, lease time.Duration) {
	s.mu.Lock()
	d := s.get(user, dev)
	d.until = later(d.until, s.now().Add(lease))
	on := s.turnOnLocked(d)
	s.mu.Unlock()
	if on {
		s.broadcast(user, dev, true)
	}
}

func (s *sessions) QueueGone(user, dev string, remaining int) {
	if remaining > 0 {
		return
	}
	s.mu.Lock()
	d := s.get(user, dev)
	d.until = time.Time{} // no queue, no lease: only a stream keeps it online
	s.mu.Unlock()
}

func (s *sessions) turnOnLocked(d *device) bool {
	if d.online {
		return false
	}
	d.online = true
	return true
}

// run checks for devices going offline every 250 ms until ctx ends.
func (s *sessions) run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		var off [][2]string
		s.mu.Lock()
		for k, d := range s.devices {
			if d.streams == 0 && now.After(d.until) {
				if d.online {
					off = append(off, k)
				}
				delete(s.devices, k)
			}
		}
		s.mu.Unlock()
		for _, k := range off {
			s.broadcast(k[0], k[1], false)
		}
	}
}

// broadcast sends a session event to every running plugin that asked for them.
func (s *sessions) broadcast(user, dev string, online bool) {
	ev := &pb.SessionEvent{Principal: &pb.Principal{User: user, Device: dev}, Online: online, TimeUnixNano: s.now().UnixNano()}
	s.h.mu.RLock()
	insts := make([]*instance, 0, len(s.h.all))
	for inst := range s.h.all {
		if inst.sessions {
			insts = append(insts, inst)
		}
	}
	s.h.mu.RUnlock()
	for _, inst := range insts {
		inst.sendSession(ev)
	}
}

// sendSession sends ev to inst: in its next batch if it reads batches
// (the event is not changed afterwards, so batches may share it), else
// in a message of its own.
func (inst *instance) sendSession(ev *pb.SessionEvent) {
	if inst.batch != nil {
		inst.batch.add(inst, ev)
		return
	}
	inst.send(&pb.HostMessage{Msg: &pb.HostMessage_Session{Session: ev}})
}

// replay tells a (re)started plugin which devices are online now.
func (s *sessions) replay(inst *instance) {
	if !inst.sessions {
		return
	}
	s.mu.Lock()
	var on [][2]string
	for k, d := range s.devices {
		if d.online {
			on = append(on, k)
		}
	}
	s.mu.Unlock()
	for _, k := range on {
		inst.sendSession(&pb.SessionEvent{Principal: &pb.Principal{User: k[0], Device: k[1]}, Online: true, TimeUnixNano: s.now().UnixNano()})
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func isForbidden(err error) bool { return errors.Is(err, shard.ErrForbidden) }
