package main

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

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

	for _, mode := range []string{"ws", "poll"} {
		t.Run(mode, func(t *testing.T) {
			r, err := bench(t.Context(), config{
				target: "meshgate", urls: []string{"http://" + l.Addr().String()}, subs: 5, events: 5, mode: mode,
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
