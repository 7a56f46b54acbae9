// Package nodeplugin tests the JavaScript publisher plugin in this
// directory against the real plugin host.
package nodeplugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"meshgate/internal/testkit"
	"meshgate/plugins/host"
	"meshgate/shard"
)

// TestNodePlugin_SpeaksTheContract runs plugin.mjs under node as an
// external plugin, with AutoMTLS and a checksum (of the interpreter, since
// that is the command go-plugin runs), and exercises every RPC the host
// uses. It needs `npm ci` here (CI does it); without it the test skips
// unless MESHGATE_REQUIRE_NODE=1.
func TestNodePlugin_SpeaksTheContract(t *testing.T) {
	dir, _ := filepath.Abs(".")
	node, _ := filepath.EvalSymlinks(testkit.Node(t, dir, "@grpc/grpc-js"))
	b, _ := os.ReadFile(node)
	sum := sha256.Sum256(b)
	h, err := host.New(host.Config{Plugins: []host.Plugin{{
		Name: "node-demo", Path: node, Args: []string{filepath.Join(dir, "plugin.mjs")}, SHA256: hex.EncodeToString(sum[:]),
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, _ := shard.New(shard.Config{Observer: h.Observer()})
	defer store.Close()
	h.SetSink(store)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h.Start(ctx)
	if !h.Ready() {
		t.Fatal("the node plugin did not start")
	}
	alice := shard.Principal{User: "alice", Device: "laptop"}
	q, _ := store.CreateQueue(ctx, alice, 0)
	if _, err := store.Subscribe(ctx, h, alice, q.Name, "node:demo", "", ""); err != nil {
		t.Fatal(err)
	}
	mallory := shard.Principal{User: "mallory", Device: "x"}
	mq, _ := store.CreateQueue(ctx, mallory, 0)
	if _, err := store.Subscribe(ctx, h, mallory, mq.Name, "node:demo", "", ""); !errors.Is(err, shard.ErrForbidden) {
		t.Fatalf("mallory: %v", err)
	}
	if _, err := h.Publish(ctx, alice, "node:demo", "ignored", []byte(`{"hello":"from node"}`)); err != nil {
		t.Fatal(err)
	}
	pg, err := store.Poll(ctx, alice, q.Name, 0, 10, 10*time.Second)
	if err != nil || len(pg.Items) != 1 || pg.Items[0].Etag != "1" || string(pg.Items[0].Payload) != `{"hello":"from node"}` {
		t.Fatalf("queue: %+v %v", pg.Items, err)
	}
	pid := h.Statuses()[0].PID
	h.Close() // Shutdown through the controller, not a 2 s timeout and SIGKILL
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Fatalf("node plugin %d still there after Close", pid)
	}
}
