// Package user is the built-in publisher of the `user:` scheme: a user may
// read `user:<own id>` and everything below it; anyone with the publish
// scope may publish to it through the gateway's `publish` mutation; a
// resource's etag is the last one published, kept in memory: after a
// restart it knows none, Current leaves every resource out and Authorize
// answers "", and the gateway keeps the last etag it delivered for each
// resource with subscribers (see shard.Store.Subscribe).
package user
