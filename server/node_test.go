package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meshgate/internal/testkit"
	"meshgate/server"
	"meshgate/shard"
)

// TestNodeReferenceClients runs the reference JavaScript clients against a
// live gateway: graphql-http's GraphQL-over-HTTP audits and the graphql-ws
// client. It needs `npm ci` in server/testdata/node (CI does it); without
// it the test skips, unless MESHGATE_REQUIRE_NODE=1 makes that a failure.
func TestNodeReferenceClients(t *testing.T) {
	dir, _ := filepath.Abs("testdata/node")
	node := testkit.Node(t, dir, "graphql-ws")
	// The audits send many requests with one token: lift the per-user rate.
	g := start(t, server.Config{Limits: server.Limits{RequestRate: 1e6, RequestBurst: 1e6}}, shard.Config{})
	cert := filepath.Join(filepath.Dir(strings.TrimSuffix(g.key.SecretFile, "/")), server.DevCertFile)
	for _, mode := range []string{"http", "ws"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "conformance.mjs", mode)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(),
				"MESHGATE_URL="+strings.Replace(g.url, "127.0.0.1", "localhost", 1),
				"MESHGATE_TOKEN="+g.token("nodeuser", "nodedev", "publish"),
				"NODE_EXTRA_CA_CERTS="+cert,
			)
			out, err := cmd.CombinedOutput()
			t.Logf("%s", out)
			if err != nil {
				t.Fatalf("node %s: %v", mode, err)
			}
		})
	}
}
