// Package archtest checks that dependencies point inward, as DESIGN.md says.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

func TestDependenciesPointInward(t *testing.T) {
	for _, tc := range []struct {
		pkg       string
		forbidden []string
	}{
		{"meshgate/shard", []string{"meshgate/graph", "meshgate/server", "meshgate/plugins", "github.com/99designs/gqlgen", "github.com/vektah/gqlparser", "net/http"}},
		// The cluster talks gRPC (which carries net/http in its deps) but
		// knows nothing of GraphQL, the public server or the plugins.
		{"meshgate/shard/...", []string{"meshgate/graph", "meshgate/server", "meshgate/plugins", "meshgate/cmd", "github.com/99designs/gqlgen", "github.com/vektah/gqlparser"}},
		{"meshgate/plugins/...", []string{"meshgate/graph", "meshgate/server", "github.com/99designs/gqlgen"}},
		// graph sees the core through its Backend interface, never the cluster.
		{"meshgate/graph/...", []string{"meshgate/server", "meshgate/cmd", "meshgate/shard/cluster"}},
		// TLS material is made in one place, for the server and the cluster alike.
		{"meshgate/internal/certs", []string{"meshgate/shard", "meshgate/server", "meshgate/graph", "meshgate/plugins"}},
		// internal/inproc (a publisher) and testkit are for tests: no binary carries them.
		{"meshgate/cmd/...", []string{"meshgate/internal/inproc", "meshgate/internal/testkit", "meshgate/internal/genqlienttest", "github.com/Khan/genqlient"}},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", tc.pkg).Output()
			if err != nil {
				t.Fatalf("go list: %v", err)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, bad := range tc.forbidden {
					if dep == bad || strings.HasPrefix(dep, bad+"/") {
						t.Errorf("%s depends on %s", tc.pkg, dep)
					}
				}
			}
		})
	}
}
