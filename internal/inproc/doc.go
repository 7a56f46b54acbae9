// Package inproc is an in-process publisher registry for tests: it owns the
// `user:` scheme the way plugins/builtin/user does (a user may read
// `user:<own id>` and everything below it, and a resource's etag is the
// last one published), without a plugin process. Publishes become events
// delivered to the Sink (the shard store). meshgate itself runs every
// publisher as a plugin process (plugins/host); nothing outside tests
// imports this package. It imports shard, never the reverse.
package inproc
