package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"meshgate/internal/certs"
	"os"
	"path/filepath"
	"testing"
)

// TestDevCert_CoversListenHost: the development certificate verifies for
// the --listen host, so the logged url and `curl --cacert` hint work; a
// new listen address issues it anew.
func TestDevCert_CoversListenHost(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	for _, ip := range []string{"127.0.0.41", "127.0.0.42"} {
		t.Run(ip, func(t *testing.T) {
			c := &fileConfig{DataDir: dir, Listen: ip + ":0"}
			cfg, err := c.tls(log)
			if err != nil {
				t.Fatal(err)
			}
			l, err := tls.Listen("tcp", c.Listen, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				conn, err := l.Accept()
				if err == nil {
					_ = conn.(*tls.Conn).Handshake()
					_, _ = io.Copy(io.Discard, conn)
					conn.Close()
				}
			}()
			b, err := os.ReadFile(filepath.Join(dir, certs.DevCertFile))
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(b)
			conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: ip})
			if err != nil {
				t.Fatalf("TLS to %s with the dev certificate: %v", l.Addr(), err)
			}
			conn.Close()
		})
	}
	// A name is covered too, and localhost still is.
	cert, _, _, created, err := certs.EnsureDevCert(dir, "gateway.test")
	if err != nil || !created {
		t.Fatalf("created %v, err %v", created, err)
	}
	b, _ := os.ReadFile(cert)
	blk, _ := pem.Decode(b)
	x, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"gateway.test", "localhost", "127.0.0.1", "::1"} {
		if err := x.VerifyHostname(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if _, _, _, created, _ := certs.EnsureDevCert(dir, "gateway.test"); created {
		t.Error("a certificate that covers the host was issued again")
	}
	if _, _, _, created, _ := certs.EnsureDevCert(dir, "0.0.0.0"); created {
		t.Error("the unspecified address needs no new certificate")
	}
}
