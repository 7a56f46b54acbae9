package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meshgate/plugins/host"
	"meshgate/shard"
)

// TestFeeds_AsAUserRunsIt builds the plugin with `go build`, configures it
// by path and checksum, as the README's plugin guide says, and checks that
// a webhook post reaches a subscribed queue.
func TestFeeds_AsAUserRunsIt(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "feeds")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(bin)
	sum := sha256.Sum256(b)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()

	h, err := host.New(host.Config{Plugins: []host.Plugin{{
		Name: "feeds", Path: bin, SHA256: hex.EncodeToString(sum[:]), Env: map[string]string{"FEEDS_LISTEN": addr},
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, _ := shard.New(shard.Config{})
	defer store.Close()
	h.SetSink(store)
	h.Start(t.Context())
	defer h.Close()
	if !h.Ready() {
		t.Fatal("feeds did not start")
	}
	p := shard.Principal{User: "alice", Device: "laptop"}
	q, _ := store.CreateQueue(context.Background(), p, 0)
	if _, err := store.Subscribe(context.Background(), h, p, q.Name, "feeds:news", "", ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Post("http://"+addr+"/feeds/news", "application/json", strings.NewReader(`{"title":"hello"}`))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pg, err := store.Poll(context.Background(), p, q.Name, 0, 10, 10*time.Second)
	if err != nil || len(pg.Items) != 1 || string(pg.Items[0].Payload) != `{"title":"hello"}` || pg.Items[0].Etag != "1" {
		t.Fatalf("queue: %+v %v", pg.Items, err)
	}
}
