package shard

import (
	"slices"
	"time"
)

// maxUnheld bounds how many publishes that found no list are remembered
// (RememberUnheld); beyond it, one is counted (Counters.UnheldDropped)
// and forgotten.
const maxUnheld = 1 << 16

// unheldPub is a publish acknowledged while no list of its resource was
// held here: its etag, the At it was given then, and until when it is
// remembered (unix nanoseconds).
type unheldPub struct {
	etag  string
	at    uint64
	until int64
}

// RememberUnheld makes this store remember, until until, every publish
// that finds no subscriber list here (noteUnheld). The cluster calls it
// whenever lists may be in the making elsewhere: a membership change, a
// repair, a rejoin that dropped lists, a node told to link again.
//
// Invariant: a publish acknowledged while its list was lost is not lost
// to a queue whose interest was on its way. A list dies with its holder
// (a crash) or is dropped (a node taken for dead comes back); the queues
// in it link again from their nodes, each when it learns of the loss,
// which may be seconds apart (a survivor that saw the death later, a
// node told by the returning one). A publish in between finds no list,
// reaches nobody and is acknowledged; the list a late link then starts
// from that queue's last etag would be older than the acknowledged one,
// and its RESYNC would leave the queue stale for good (issue 12: the
// chaos test's watches "never caught up", the publisher's later etags
// never announced). Remembered, the publish gives the list it would have
// reached its etag, ordered by At with the queues' hints (AddInterest
// never takes an older one over it): the late link's RESYNC names it.
// The late link goes to the key's owner of its moment, so a remembered
// publish moves with the key's ownership (ForgetUnheld returns it to
// hand on, ImportUnheld takes it over).
func (s *Store) RememberUnheld(until time.Time) {
	for u := until.UnixNano(); ; {
		old := s.unheldUntil.Load()
		if old >= u || s.unheldUntil.CompareAndSwap(old, u) {
			return
		}
	}
}

// Remembered is a publish a store remembered (RememberUnheld), as one
// node hands it to another with the keys (ImportUnheld).
type Remembered struct {
	Resource, Etag string
	At             uint64    // the Position.At it was given
	Until          time.Time // remembered until then
}

// ForgetUnheld forgets the remembered publishes whose time is up, and
// those of the resources drop accepts (nil: none), which it returns.
// drop is called with no lock held: no lookup of a list waits for it.
func (s *Store) ForgetUnheld(drop func(res string) bool) []Remembered {
	now := s.cfg.Now().UnixNano()
	var keys []string
	s.unheldMu.Lock()
	for res, u := range s.unheld {
		switch {
		case now > u.until:
			delete(s.unheld, res)
		case drop != nil:
			keys = append(keys, res)
		}
	}
	s.unheldMu.Unlock()
	keys = slices.DeleteFunc(keys, func(res string) bool { return !drop(res) })
	if len(keys) == 0 {
		return nil
	}
	out := make([]Remembered, 0, len(keys))
	s.unheldMu.Lock()
	for _, res := range keys {
		if u, ok := s.unheld[res]; ok {
			out = append(out, Remembered{Resource: res, Etag: u.etag, At: u.at, Until: time.Unix(0, u.until)})
			delete(s.unheld, res)
		}
	}
	s.unheldMu.Unlock()
	return out
}

// ImportUnheld takes over a publish another node remembered for a
// resource this one owns now (handed with the keys), or one put back
// here (its hand-off failed).
//
// Invariant: a remembered publish moves with its key's ownership. A
// link that comes late (its node learned of a lost list seconds after
// the publish) goes to the key's owner of that moment; the list it makes
// there starts from the newest publish acknowledged while the list was
// lost, wherever it was remembered, not from the older etag of the
// queue that links. So the newest of two by At is kept, and a list held
// here adopts u's etag if it is newer than its own (Before, as
// AddInterest adopts a hint) and announces it to its queues with a
// RESYNC.
func (s *Store) ImportUnheld(u Remembered) {
	if s.cfg.Now().After(u.Until) {
		return
	}
	observeAt(u.At)
	for {
		s.res.mu.RLock()
		r := s.res.m[u.Resource]
		if r == nil {
			s.unheldMu.Lock()
			old, ok := s.unheld[u.Resource]
			switch {
			case !ok && len(s.unheld) >= maxUnheld:
				s.counters.UnheldDropped.Add(1)
			case !ok || old.at < u.At:
				s.unheld[u.Resource] = unheldPub{etag: u.Etag, at: u.At, until: u.Until.UnixNano()}
			}
			s.unheldMu.Unlock()
			s.res.mu.RUnlock()
			return
		}
		s.res.mu.RUnlock()
		r.mu.Lock()
		if r.dead {
			r.mu.Unlock()
			continue
		}
		pos := Position{At: u.At}
		raised := u.Etag != r.etag && !pos.Before(r.etagPos)
		if raised {
			r.etag, r.etagPos, r.etagUnknown = u.Etag, pos, false
		}
		others := r.countLocked() > 0
		r.mu.Unlock()
		if raised && others {
			s.Deliver(&Event{Kind: Resync, Resource: u.Resource, Etag: u.Etag, Time: s.cfg.Now(), Pos: pos})
		}
		return
	}
}

// noteUnheld remembers ev, a publish of a change that found no list
// here, while RememberUnheld asks for it. It returns the list if one was
// made meanwhile (ev goes to it). The table's lock orders it with the
// making of a list (lockList, under the write lock; here the read lock,
// so publishes that remember hold up no lookup): either the list is
// made first and ev reaches it, or ev is remembered first and the list
// starts from it.
func (s *Store) noteUnheld(ev *Event) *resource {
	until := s.unheldUntil.Load()
	if until == 0 || ev.Kind != Changed && ev.Kind != Resync { // on a single node: never asked
		return nil
	}
	now := s.cfg.Now()
	if now.UnixNano() > until {
		return nil
	}
	s.res.mu.RLock()
	defer s.res.mu.RUnlock()
	if r := s.res.m[ev.Resource]; r != nil {
		return r
	}
	s.unheldMu.Lock()
	defer s.unheldMu.Unlock()
	if _, ok := s.unheld[ev.Resource]; !ok && len(s.unheld) >= maxUnheld {
		s.counters.UnheldDropped.Add(1)
		return nil
	}
	// A RESYNC announcing an etag again keeps its At (stampLocked).
	at := ev.Pos.At
	if at == 0 {
		at = stampAt(now)
	}
	s.unheld[ev.Resource] = unheldPub{etag: ev.Etag, at: at, until: until}
	return nil
}

// takeUnheldLocked forgets the publish remembered for res and returns
// it, unless its time is up (a later publish was then not remembered).
// Every list made here takes it (lockList's callers), so none is left
// behind to start a later list from an etag older than that list's.
// s.res.mu held (write).
func (s *Store) takeUnheldLocked(res string, now time.Time) (unheldPub, bool) {
	s.unheldMu.Lock()
	defer s.unheldMu.Unlock()
	u, ok := s.unheld[res]
	if !ok {
		return u, false
	}
	delete(s.unheld, res)
	return u, now.UnixNano() <= u.until
}
