package shard

import "time"

// Observer hears about device activity, for presence: the plugin host
// turns these into online and offline session events. Calls come with no
// lock held, from the goroutine that did the work; they must not block
// and must not call back into the Store.
type Observer interface {
	// StreamOpened: a stream attached to one of the device's queues.
	StreamOpened(user, device string)
	// StreamClosed: a stream detached.
	StreamClosed(user, device string)
	// Read: the device read or renewed a queue whose lease is lease.
	Read(user, device string, lease time.Duration)
	// QueueGone: one of the device's queues was deleted or expired;
	// remaining is how many it still has.
	QueueGone(user, device string, remaining int)
}

type nopObserver struct{}

func (nopObserver) StreamOpened(string, string)        {}
func (nopObserver) StreamClosed(string, string)        {}
func (nopObserver) Read(string, string, time.Duration) {}
func (nopObserver) QueueGone(string, string, int)      {}
