// Package host starts, supervises and talks to publisher plugins: one
// hashicorp/go-plugin subprocess per configured plugin, in gRPC mode with
// AutoMTLS. It routes each resource scheme to the plugin that owns it,
// gives every call a deadline, restarts a crashed plugin with exponential
// backoff and jitter, and after a restart asks it for the current etag of
// every resource with subscribers, putting a RESYNC wherever the etag
// changed. It turns device activity from shard into session events for
// presence, and answers the questions plugins ask each other.
//
// It imports shard and plugins/sdk; nothing imports it but cmd.
//
// Lock order: Host.mu → nothing.
package host
