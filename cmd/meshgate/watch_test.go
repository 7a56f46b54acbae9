package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBinary_WatchRidesThroughRestart runs `meshgate watch` against a real
// gateway, publishes with `meshgate publish`, restarts the gateway (its
// queue is gone), and checks the watcher carries on by itself.
func TestBinary_WatchRidesThroughRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t.Parallel() // its own data directory and port
	bin := raceBinary(t)
	data := t.TempDir()
	listen := freeTCP(t, "127.0.0.1")
	url := "https://" + listen + "/graphql"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	startServer := func() *exec.Cmd {
		srv := exec.CommandContext(ctx, bin, "serve", "--data-dir", data, "--listen", listen, "--log-level", "error")
		out, _ := srv.StdoutPipe()
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
			t.Fatal("no startup line")
		}
		return srv
	}
	srv := startServer()
	tok := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"token", "--data-dir", data, "--user", "alice"}, args...)...).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	watcher, publisher := tok("--device", "watcher"), tok("--device", "script", "--scope", "publish")
	cacert := filepath.Join(data, "tls-cert.pem")
	w := exec.CommandContext(ctx, bin, "watch", "--url", url, "--token", watcher, "--cacert", cacert, "--json", "user:alice/todo")
	wout, _ := w.StdoutPipe()
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { w.Process.Signal(syscall.SIGTERM); w.Wait() }()
	lines := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(wout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
	}()
	expect := func(what string, match func(map[string]any) bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case m, ok := <-lines:
				if !ok {
					t.Fatalf("watch exited waiting for %s", what)
				}
				if match(m) {
					return
				}
			case <-deadline:
				t.Fatalf("no %s from meshgate watch", what)
			}
		}
	}
	publish := func(etag string) {
		t.Helper()
		out, err := exec.Command(bin, "publish", "--url", url, "--token", publisher, "--cacert", cacert, "user:alice/todo", etag, `{"item":"milk"}`).CombinedOutput()
		if err != nil {
			t.Fatalf("publish: %v: %s", err, out)
		}
	}
	changed := func(etag string) func(map[string]any) bool {
		return func(m map[string]any) bool { return m["kind"] == "CHANGED" && m["etag"] == etag }
	}
	expect("watching line", func(m map[string]any) bool { return m["watching"] == "user:alice/todo" })
	publish("t1")
	expect("CHANGED t1", changed("t1"))

	srv.Process.Signal(syscall.SIGTERM)
	srv.Wait()
	srv = startServer() // a new process: the watcher's queue is gone
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	expect("streaming again", func(m map[string]any) bool { return m["state"] == "streaming" })
	publish("t2")
	expect("CHANGED t2 after the restart", changed("t2"))
}
