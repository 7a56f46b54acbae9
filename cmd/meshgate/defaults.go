package main

import (
	"fmt"
	"io"

	"github.com/goccy/go-yaml"

	"meshgate/graph"
	"meshgate/internal/gctune"
	"meshgate/plugins/host"
	"meshgate/server"
	"meshgate/shard"
)

// defaultConfig is the config serve runs with when nothing is set: every
// default spelled out, taken from the components that own them
// (shard.DefaultConfig, server.DefaultConfig, host.DefaultPlugins).
func defaultConfig() (fileConfig, error) {
	var c fileConfig
	if err := c.check(""); err != nil { // fills the file's own defaults
		return c, err
	}
	c.LogFormat = "auto"
	c.Auth.MaxTokenLifetime = server.DefaultMaxTokenLifetime
	c.Store = shard.DefaultConfig()
	d := server.DefaultConfig()
	coalesce := !d.WS.NoCoalesce
	c.Server = limitsConfig{Config: d, MaxStreams: d.Limits.MaxConns, MaxPayloadBytes: graph.MaxPayload,
		WS: wsConfig{WSConfig: d.WS, CoalesceWrites: &coalesce}}
	c.CORS = d.CORS
	c.Memory.GCHeadroomMiB = gctune.DefaultHeadroom >> 20
	c.Plugins = host.DefaultPlugins()
	return c, nil
}

// configComments documents every key `config defaults` prints, by path.
// TestConfigDefaults fails when a key has none.
var configComments = map[string]string{ //nolint:gosec // G101: key names such as auth.max_token_lifetime, not credentials
	"listen":                             "HTTPS listen address (--listen)",
	"data_dir":                           "development key, certificate and cluster CA live here (--data-dir)",
	"tls_cert":                           "TLS certificate (PEM); empty: a self-signed one in data_dir",
	"tls_key":                            "TLS private key (PEM), with tls_cert",
	"insecure_http":                      "plain HTTP, only behind a TLS-terminating proxy",
	"log_level":                          "debug, info, warn or error",
	"log_format":                         "text, json or auto (text when stderr is a terminal)",
	"shutdown_timeout":                   "how long a shutdown may take, hand-off included",
	"auth":                               "token keys",
	"auth.keys":                          "JWT verification keys: {id, alg: HS256|EdDSA|RS256, secret_file | public_key_file}",
	"auth.disable_dev_key":               "true: only auth.keys (production); false: also the development key in data_dir",
	"auth.max_token_lifetime":            "how far in the future a token's exp may be; later ones are refused",
	"faults":                             "failure injection, off by default (README: Fault injection)",
	"faults.seed":                        "makes a run repeatable; 0: random",
	"faults.http":                        "before each /graphql request",
	"faults.plugins":                     "before each call to a plugin",
	"faults.cluster":                     "before each node-to-node call",
	"plugins":                            "publisher plugins; absent: every built-in ({name, builtin} or {name, path, sha256, args, env})",
	"queues":                             "the store: queues and their buffers",
	"queues.default_ttl":                 "a new queue's lease when createQueue gives none",
	"queues.max_ttl":                     "the longest lease",
	"queues.buffer_size":                 "notifications a queue holds before the oldest go (OVERFLOW); at most 1048576",
	"queues.retain_delivered":            "delivered notifications kept for a reader resuming with an older after; at most buffer_size",
	"queues.max_subscriptions_per_queue": "subscriptions one queue may hold",
	"queues.max_queues_per_device":       "queues one device may hold",
	"queues.reap_interval":               "how often expired queues are removed",
	"queues.max_poll_limit":              "the largest page a poll returns",
	"queues.max_wait":                    "the longest long-poll",
	"limits":                             "the front door's limits (README: Limits)",
	"limits.max_body_bytes":              "a POST body or SSE request",
	"limits.max_depth":                   "selection depth, introspection excluded",
	"limits.max_query_bytes":             "the query text, also in GET URLs",
	"limits.max_tokens":                  "the parser's token count",
	"limits.sse_keep_alive":              "an idle SSE stream gets a comment line this often",
	"limits.websocket.write_timeout":     "a write that takes longer closes a stalled consumer (its queue keeps buffering)",
	"limits.max_complexity":              "gqlgen's complexity score, 1 per field",
	"limits.max_payload_bytes":           "a publish or invite payload (encoded JSON)",
	"limits.per_user":                    "per user, answered with LIMIT_EXCEEDED (429 / close 4429)",
	"limits.per_user.request_rate":       "GraphQL requests per second",
	"limits.per_user.request_burst":      "requests above the rate allowed at once",
	"limits.per_user.subscribe_rate":     "subscribe mutations per second",
	"limits.per_user.subscribe_burst":    "subscribes above the rate allowed at once (a device starting up)",
	"limits.per_user.max_streams":        "open WebSocket and SSE streams",
	"limits.body_timeout":                "reading a request's body; a client that trickles it gets 408",
	"limits.max_streams":                 "open WebSocket and SSE streams on this node",
	"limits.websocket":                   "per WebSocket connection",
	"limits.websocket.max_message_bytes": "one incoming message; larger closes with 1009",
	"limits.websocket.message_rate":      "incoming messages per second; a flood closes with 4429",
	"limits.websocket.message_burst":     "messages above the rate allowed at once",
	"limits.websocket.max_operations":    "concurrent operations",
	"limits.websocket.init_timeout":      "until connection_init, else close 4408",
	"limits.websocket.max_queued_bytes":  "frames queued for a connection and not yet written; past it, close 1013",
	"limits.websocket.ping_interval":     "idle connections are pinged this often, closed after 3 silent intervals",
	"limits.websocket.keep_alive":        "protocol keep-alive: a ping message after this long with nothing written (graphql-transport-ws), ka this often (legacy)",
	"limits.websocket.max_lag":           "notifications a stream may fall behind its queue ...",
	"limits.websocket.lag_grace":         "... for this long before it is closed with 1013",
	"limits.websocket.coalesce_writes":   "writes coalesce under load (BENCHMARKS.md)",
	"cluster":                            "empty bind: a single node (README: Cluster)",
	"cluster.node_name":                  "unique in the cluster; empty: the host name",
	"cluster.bind":                       "gossip address host[:port], default port 7946",
	"cluster.advertise":                  "gossip address peers use; empty: bind",
	"cluster.rpc":                        "node-to-node gRPC address; empty: the bind host, port 7947",
	"cluster.rpc_advertise":              "RPC address peers use; empty: rpc",
	"cluster.join":                       "gossip addresses of members to join",
	"cluster.weight":                     "share of the ring relative to others, 1-16; 0: 1",
	"cluster.gossip_keys":                "base64 AES keys (16, 24 or 32 bytes); the first encrypts; empty: gossip in clear",
	"cluster.trusted_network":            "true: gossip in clear beyond loopback (only where no one else can reach the gossip port)",
	"cluster.ca":                         "cluster CA (PEM); empty: a development CA in data_dir",
	"cluster.ca_key":                     "with ca: each node issues itself a certificate",
	"cluster.cert":                       "with ca: this node's certificate",
	"cluster.key":                        "with cert: this node's key",
	"cluster.probe_interval":             "failure-detection probe period; 0: 1s",
	"cors":                               "pages on other origins calling /graphql (README: Browsers on other origins)",
	"cors.allowed_origins":               "origins (scheme://host[:port]) whose pages may call /graphql and open WebSockets; [\"*\"]: any (warns); empty: no CORS headers, upgrades unchecked (--cors-allowed-origins)",
	"cors.max_age":                       "how long a browser caches a preflight answer",
	"memory":                             "the garbage collector",
	"memory.gc_headroom_mib":             "heap growth allowed above the live heap, in MiB; -1: leave GOGC alone",
}

// listKeys are the keys whose values are lists.
var listKeys = map[string]bool{"auth.keys": true, "plugins": true, "cluster.join": true, "cluster.gossip_keys": true, "cors.allowed_origins": true}

// faultComments document each fault point's keys (faults.http.…).
var faultComments = map[string]string{
	"delay_probability": "share of calls delayed",
	"delay":             "how long",
	"error_probability": "share of calls failed",
}

// printDefaults is `meshgate config defaults`: the whole effective config
// with nothing set, as YAML with a comment on every key. It is a valid
// config file, and `config check` accepts it.
func printDefaults(w io.Writer) error {
	c, err := defaultConfig()
	if err != nil {
		return err
	}
	cm := yaml.CommentMap{}
	for k, v := range configComments {
		cm["$."+k] = []*yaml.Comment{yaml.LineComment(" " + v)}
		if listKeys[k] { // a line comment after an empty list would break the YAML
			cm["$."+k] = []*yaml.Comment{yaml.HeadComment(" " + v)}
		}
	}
	for _, p := range []string{"http", "plugins", "cluster"} {
		for k, v := range faultComments {
			cm["$.faults."+p+"."+k] = []*yaml.Comment{yaml.LineComment(" " + v)}
		}
	}
	b, err := yaml.MarshalWithOptions(c, yaml.WithComment(cm), yaml.IndentSequence(true))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "# meshgate's effective config with nothing set (meshgate config defaults).\n# Every key is optional; a zero or absent value means the default shown.\n\n%s", b)
	return err
}
