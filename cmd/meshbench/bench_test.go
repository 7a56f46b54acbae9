package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"meshgate/graph"
	"meshgate/internal/inproc"
	"meshgate/server"
	"meshgate/shard"
	"meshgate/shard/cluster"
)

func TestParseEvent(t *testing.T) {
	for _, tc := range []struct {
		in   string
		i, t int64
		ok   bool
	}{
		{`{"type":"next","id":"1","payload":{"data":{"notifications":{"seq":5,"payload":{"i":3,"t":1700000000000000000}}}}}`, 3, 1700000000000000000, true},
		{`{"data":{"events":{"i":-1,"t":"42"}}}`, -1, 42, true},
		{`{"i":7,"t":9}`, 7, 9, true},
		{`{"type":"ping"}`, 0, 0, false},
	} {
		i, ts, ok := parseEvent([]byte(tc.in))
		if ok != tc.ok || ok && (i != tc.i || ts != tc.t) {
			t.Errorf("%s: %d %d %v", tc.in, i, ts, ok)
		}
	}
}

// TestBench_AgainstALiveGateway runs the tool as BENCHMARKS.md does, on a
// tiny scale, against a real gateway on loopback: every event reaches
// every subscriber once.
func TestBench_AgainstALiveGateway(t *testing.T) {
	dir := t.TempDir()
	key, _, err := server.EnsureDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := server.NewAuthenticator([]server.Key{key}, nil)
	store, _ := shard.New(shard.Config{})
	defer store.Close()
	node := cluster.Single(store)
	srv, err := server.New(server.Config{}, auth, node, &graph.Resolver{Backend: node, Publishers: inproc.New(store, nil)})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l, nil)
	defer srv.Shutdown(context.Background())

	for _, tc := range []struct{ mode, setup string }{{"ws", "http"}, {"ws", "ws"}, {"poll", "http"}} {
		t.Run(tc.mode+"/setup "+tc.setup, func(t *testing.T) {
			r, err := bench(t.Context(), config{
				target: "meshgate", urls: []string{"http://" + l.Addr().String()}, subs: 5, events: 5, mode: tc.mode, setup: tc.setup,
				sources: []string{"127.0.0.2", "127.0.0.3"}, keyFile: filepath.Join(dir, server.DevKeyFile),
				settle: time.Millisecond, timeout: 20 * time.Second, parallel: 4, label: "test",
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.Delivered != 25 || r.Lost != 0 || r.Duplicates != 0 || r.LatencyMaxms <= 0 {
				t.Fatalf("report %+v", r)
			}
		})
	}
}

// TestCentrifugoMessages checks that a frame with several of Centrifugo's
// messages (one JSON object a line) records every publication in it and
// answers the server's ping.
func TestCentrifugoMessages(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	s := &sub{conn: client, events: 10, seen: make([]uint64, 1)}
	frame := []byte(`{"push":{"channel":"feed","pub":{"data":{"i":1,"t":5},"offset":2}}}` + "\n" +
		`{}` + "\n" + `{"push":{"channel":"feed","pub":{"data":{"i":2,"t":6},"offset":3}}}`)
	pong := make(chan []byte, 1)
	go func() {
		h, err := ws.ReadHeader(server)
		if err != nil {
			pong <- nil
			return
		}
		p := make([]byte, h.Length)
		_, _ = io.ReadFull(server, p)
		ws.Cipher(p, h.Mask, 0)
		pong <- p
	}()
	if err := s.centrifugoMessages(frame, 10); err != nil {
		t.Fatal(err)
	}
	if got := s.count.Load(); got != 2 {
		t.Fatalf("recorded %d publications, want 2", got)
	}
	if p := <-pong; string(p) != "{}" {
		t.Fatalf("pong %q, want {}", p)
	}
}
