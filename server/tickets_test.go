package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"meshgate/internal/certs"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"meshgate/server"
)

// ticketNode is one node's TLS listener on loopback, sealing tickets with
// ShareSessionTickets(secret) on its own clock (nil secret: Go's own
// per-process keys). It answers every connection with one byte, which
// carries the session ticket to the client.
func ticketNode(t *testing.T, dir string, secret []byte, clock *atomic.Int64) string {
	t.Helper()
	cert, key, _, _, err := certs.EnsureDevCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := certs.TLSConfig(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = nil
	if secret != nil {
		if err := server.ShareSessionTickets(cfg, [][]byte{secret}, func() time.Time { return time.Unix(clock.Load(), 0) }); err != nil {
			t.Fatal(err)
		}
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte{1}); err != nil {
					return
				}
				_, _ = c.Read(make([]byte, 1)) // until the client hangs up
			}()
		}
	}()
	return l.Addr().String()
}

// TestTLS_SharedTicketsResumeOnAnotherNode: a device that connected to one
// node resumes its TLS session on another node that shares the secret,
// and gets a full handshake (never an error) from a node with another
// secret, from one whose keys have moved on two periods, or from one with
// keys of its own.
func TestTLS_SharedTicketsResumeOnAnotherNode(t *testing.T) {
	dir := t.TempDir() // one certificate for every node, as behind one name
	secret := []byte("0123456789abcdef0123456789abcdef")
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC).Unix())
	var later atomic.Int64
	later.Store(clock.Load() + int64(2*server.TicketPeriod/time.Second))
	var next atomic.Int64
	next.Store(clock.Load() + int64(server.TicketPeriod/time.Second))
	first := ticketNode(t, dir, secret, &clock)

	pem, err := os.ReadFile(dir + "/" + certs.DevCertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	connect := func(t *testing.T, cache tls.ClientSessionCache, addr string) bool {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", ClientSessionCache: cache})
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		defer c.Close()
		if _, err := c.Read(make([]byte, 1)); err != nil { // the ticket arrives before the byte
			t.Fatal(err)
		}
		return c.ConnectionState().DidResume
	}
	for _, tc := range []struct {
		name   string
		node   func() string
		resume bool
	}{
		{"same secret", func() string { return ticketNode(t, dir, secret, &clock) }, true},
		{"same secret, next period", func() string { return ticketNode(t, dir, secret, &next) }, true},
		{"same secret, two periods later", func() string { return ticketNode(t, dir, secret, &later) }, false},
		{"another secret", func() string { return ticketNode(t, dir, []byte("another cluster's secret, 32 b.."), &clock) }, false},
		{"keys of its own", func() string { return ticketNode(t, dir, nil, nil) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := tls.NewLRUClientSessionCache(1)
			if connect(t, cache, first) {
				t.Fatal("the first connection resumed")
			}
			if !connect(t, cache, first) {
				t.Fatal("no resumption on the node that made the ticket")
			}
			if got := connect(t, cache, tc.node()); got != tc.resume {
				t.Fatalf("resumed on the other node: %v, want %v", got, tc.resume)
			}
		})
	}
	// A damaged ticket is ignored: a full handshake, not a failure.
	cache := tls.NewLRUClientSessionCache(1)
	connect(t, cache, first)
	cs, ok := cache.Get("localhost")
	if !ok {
		t.Fatal("no ticket")
	}
	ticket, state, err := cs.ResumptionState()
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), ticket...)
	bad[len(bad)-1] ^= 1
	damaged, err := tls.NewResumptionState(bad, state)
	if err != nil {
		t.Fatal(err)
	}
	cache.Put("localhost", damaged)
	if connect(t, cache, first) {
		t.Fatal("resumed with a damaged ticket")
	}
}
