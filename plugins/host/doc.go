// Package host starts, supervises and talks to publisher plugins: one
// hashicorp/go-plugin subprocess per configured plugin, in gRPC mode with
// AutoMTLS. It routes each resource scheme to the plugin that owns it,
// gives every call a deadline, restarts a crashed plugin with exponential
// backoff and jitter. After a restart, before reading the plugin's events,
// it asks it again about every subscription of its schemes (Authorize;
// REVOKED where it now says no), then for the current etag of every
// resource with subscribers, putting a RESYNC wherever the etag changed.
// When any plugin revokes, plugins that ask others to authorize
// (presence) have their subscriptions re-checked the same way. It turns
// device activity from shard into session events for presence, and
// answers the questions plugins ask each other.
//
// What a plugin can make the host hold is bounded: 1 MiB per gRPC message
// (checked before decoding), 64 KiB per event payload (a larger one is
// replaced, not dropped), 16 KiB per stderr line, whose fields never
// become the gateway's own log keys. An external plugin's file must not
// be writable by others; the descriptor that was hashed is the one run.
//
// It imports shard and plugins/sdk; nothing imports it but cmd.
//
// A publish_direct plugin that declares read_own_subtree has its
// Authorize answered by the host (direct.authorizeOwn); a plugin that
// sets session_batches gets its session events in batches, one message
// per SessionInterval at most (sessionBatch).
//
// Lock order: Host.mu → nothing; sessionBatch.mu → instance.sendMu;
// direct.mu → nothing. A re-check holds no lock while it calls the plugin
// or the sink.
package host
