package host

import (
	"context"
	"fmt"
	"sync"
	"time"

	pb "meshgate/plugins/proto"
	"meshgate/shard"
)

// recheckWorkers bounds the Authorize calls a re-check has in flight.
const recheckWorkers = 8

// recheckTimeout bounds one re-check answer, longer than CallTimeout: a
// restarted plugin may answer only once it has loaded its state (storage
// scans its tree first), and a re-check that times out restarts it.
const recheckTimeout = 30 * time.Second

// recheck asks inst again, for every subscription of its schemes whose
// list is held here, whether its principal may still read the resource,
// and revokes it where the answer is no. The invariant it restores: a
// subscription exists only while its publisher would authorize it. A
// plugin that was down (or whose event stream broke) may have lost a
// REVOKED it was about to send; a restarted plugin only knows the world as
// it is now, so the host asks it, before any new event of it is delivered.
//
// An answer that does not come (an error, a timeout) fails the re-check:
// the caller restarts the plugin and asks again rather than keep or drop a
// subscription on a guess.
func (h *Host) recheck(ctx context.Context, inst *instance) (revoked int, err error) {
	var subs []shard.Subscriber
	for _, s := range inst.schemes {
		subs = append(subs, h.sink.SubscribersWithScheme(s)...)
	}
	if len(subs) == 0 {
		return 0, nil
	}
	var (
		mu      sync.Mutex
		denied  []shard.Subscriber
		firstEr error
		wg      sync.WaitGroup
	)
	work := make(chan shard.Subscriber)
	for range min(recheckWorkers, len(subs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sub := range work {
				cctx, cancel := context.WithTimeout(ctx, max(h.cfg.CallTimeout, recheckTimeout))
				r, err := inst.client.Authorize(cctx, &pb.AuthorizeRequest{Principal: &pb.Principal{User: sub.User, Device: sub.Device}, Resource: sub.Resource})
				cancel()
				mu.Lock()
				switch {
				case err != nil:
					if firstEr == nil {
						firstEr = fmt.Errorf("re-check %s for %s: %w", sub.Resource, sub.User, callError(inst.name, err))
					}
				case !r.GetAllowed():
					denied = append(denied, sub)
				}
				mu.Unlock()
			}
		}()
	}
	for _, sub := range subs {
		work <- sub
	}
	close(work)
	wg.Wait()
	// Revoke what was denied even when another answer failed: those
	// answers are certain.
	for _, sub := range denied {
		h.sink.Revoke(sub.Resource, sub.User, sub.Device)
	}
	h.log.Info("re-checked subscriptions", "plugin", inst.name, "subscribers", len(subs), "revoked", len(denied))
	return len(denied), firstEr
}

// kickDependents asks for a re-check of the subscriptions of every plugin
// that delegates part of its decisions to others (it has asked the host
// to authorize: presence asks storage whether two users share a folder).
// Called when any plugin revokes something: the fact a dependent
// subscription rested on may be gone. Coalesced and asynchronous: it
// never blocks the event stream that called it.
func (h *Host) kickDependents() {
	select {
	case h.dependents <- struct{}{}:
	default: // a re-check is already due: it will see this change
	}
}

// runDependents re-checks dependents' subscriptions when kicked, until
// ctx ends.
func (h *Host) runDependents(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.dependents:
		}
		h.mu.RLock()
		var insts []*instance
		for inst := range h.all {
			if inst.up && inst.asks.Load() {
				insts = append(insts, inst)
			}
		}
		h.mu.RUnlock()
		for _, inst := range insts {
			if _, err := h.recheck(ctx, inst); err != nil && ctx.Err() == nil {
				h.log.Warn("re-check of a dependent plugin failed", "plugin", inst.name, "err", err)
			}
		}
	}
}
