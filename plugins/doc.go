// Package plugins is the publisher side of meshgate: publishers own resource
// schemes, authorize subscriptions and report changes. Every publisher runs
// as a plugin process (hashicorp/go-plugin): proto/ is the contract, sdk/
// what a plugin imports, host/ starts and supervises them behind
// shard.Authorizer, and builtin/ holds the user, storage and presence
// publishers. (Tests that need a publisher without a process use
// internal/inproc.)
package plugins
