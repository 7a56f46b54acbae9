package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"

	"meshgate/internal/certs"
)

// handshake runs a TLS handshake between a node of serverCA and a node of
// clientCA over an in-memory pipe and returns the client's error.
func handshake(t *testing.T, serverDir, clientDir string) error {
	t.Helper()
	node := func(dir, name string) (*tls.Config, *tls.Config) {
		ca, key, _, err := certs.EnsureDevCA(dir)
		if err != nil {
			t.Fatal(err)
		}
		srv, cli, err := certs.TLSFromCA(ca, key, name)
		if err != nil {
			t.Fatal(err)
		}
		return srv, cli
	}
	srv, _ := node(serverDir, "n1")
	_, cli := node(clientDir, "n2")
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _ = tls.Server(a, srv).Handshake() }()
	return tls.Client(b, cli).Handshake()
}

func TestCluster_NodesOfOneCATrustEachOtherAndNoOther(t *testing.T) {
	dir := t.TempDir()
	if err := handshake(t, dir, dir); err != nil {
		t.Fatalf("two nodes of one CA: %v", err)
	}
	if err := handshake(t, dir, t.TempDir()); err == nil {
		t.Fatal("a node of another CA was accepted")
	}
}

func TestDevCert_CoversLoopbackAndIsKept(t *testing.T) {
	dir := t.TempDir()
	cert, key, fp, created, err := certs.EnsureDevCert(dir, "127.0.0.1", "gateway.test")
	if err != nil || !created || fp == "" {
		t.Fatalf("first run: created %v, fingerprint %q, %v", created, fp, err)
	}
	if _, _, fp2, again, err := certs.EnsureDevCert(dir, "gateway.test"); err != nil || again || fp2 != fp {
		t.Fatalf("second run made another certificate (created %v, %q then %q, %v)", again, fp, fp2, err)
	}
	cfg, err := certs.TLSConfig(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509Leaf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "127.0.0.16", "::1", "gateway.test"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
}

func x509Leaf(cfg *tls.Config) (*x509.Certificate, error) {
	return x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
}
