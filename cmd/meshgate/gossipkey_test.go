package main

import (
	"strings"
	"testing"
)

// TestClusterConfig_gossipKeyBeyondLoopback: a cluster that gossips
// beyond loopback needs a gossip key, or an explicit trusted network.
func TestClusterConfig_gossipKeyBeyondLoopback(t *testing.T) {
	key := "MDEyMzQ1Njc4OWFiY2RlZg==" // 16 bytes
	for _, tc := range []struct {
		name    string
		c       clusterConfig
		wantErr bool
	}{
		{"loopback in clear", clusterConfig{Bind: "127.0.0.2"}, false},
		{"LAN in clear", clusterConfig{Bind: "10.1.2.3"}, true},
		{"all interfaces in clear", clusterConfig{Bind: "0.0.0.0"}, true},
		{"LAN with a key", clusterConfig{Bind: "10.1.2.3", GossipKeys: []string{key}}, false},
		{"LAN, trusted", clusterConfig{Bind: "10.1.2.3", TrustedNetwork: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.NodeName = "n1"
			errs := tc.c.check("f.yaml")
			got := false
			for _, e := range errs {
				if strings.Contains(e.Error(), "cluster.gossip_keys") {
					got = true
				}
			}
			if got != tc.wantErr {
				t.Fatalf("errors %v, want a gossip_keys error: %v", errs, tc.wantErr)
			}
		})
	}
}
