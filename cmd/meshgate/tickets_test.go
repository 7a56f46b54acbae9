package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCluster_TLSSessionResumesOnAnotherNode: with gossip keys, a device
// that connected to one node resumes its TLS session on another node of
// the cluster (they seal tickets with keys derived from the gossip key);
// without them, each node's tickets are its own and the other node makes
// a full handshake.
func TestCluster_TLSSessionResumesOnAnotherNode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		extra    []string
		ips      [2]string
		resumeOn bool
	}{
		{"gossip keys", []string{"--gossip-key", "bWVzaGdhdGUgdGlja2V0IHRlc3Qga2V5IDMyIGJ5dGU="}, [2]string{"127.0.0.13", "127.0.0.14"}, true},
		{"no gossip keys", nil, [2]string{"127.0.0.15", "127.0.0.16"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t)
			c.extra = tc.extra
			n1 := c.start("k1", tc.ips[0])
			n2 := c.start("k2", tc.ips[1])
			pem, err := os.ReadFile(filepath.Join(c.data, "tls-cert.pem"))
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			// One name for the whole cluster, as behind one DNS name: the
			// session cache is keyed by it.
			client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
				TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(1)},
				DisableKeepAlives: true,
			}}
			resumed := func(n *nodeProc) bool {
				t.Helper()
				resp, err := client.Get(strings.TrimSuffix(n.url, "/graphql") + "/healthz")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				return resp.TLS.DidResume
			}
			if resumed(n1) {
				t.Fatal("the first connection resumed")
			}
			if !resumed(n1) {
				t.Fatal("no resumption on the node that made the ticket")
			}
			if got := resumed(n2); got != tc.resumeOn {
				t.Fatalf("resumed on the other node: %v, want %v", got, tc.resumeOn)
			}
		})
	}
}
