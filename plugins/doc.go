// Package plugins is the publisher side of meshgate: publishers own resource
// schemes, authorize subscriptions and report changes. Subpackages hold the
// implementations; inproc is the in-process registry that serves the
// built-in `user:` scheme until plugin processes (hashicorp/go-plugin) take
// over behind the same shard.Authorizer interface.
package plugins
