package server_test

import (
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meshgate/server"
	"meshgate/shard"
)

func TestStatusJSON(t *testing.T) {
	g := start(t, server.Config{Plugins: func() []server.PluginStatus { return []server.PluginStatus{{Name: "storage", Up: true}} }}, shard.Config{})
	alice := g.token("alice", "laptop")
	g.subscribe(alice, g.createQueue(alice), "user:alice/x")
	get := func(tok string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", strings.TrimSuffix(g.url, "/graphql")+"/status.json", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m) // a refusal has no JSON body: m stays nil
		return resp.StatusCode, m
	}
	if code, _ := get(alice); code != 403 {
		t.Fatalf("without admin: %d", code)
	}
	code, m := get(g.token("ops", "b", "admin"))
	counts := m["counts"].(map[string]any)
	if code != 200 || counts["queues"].(float64) != 1 || counts["subscriptions"].(float64) != 1 || len(m["plugins"].([]any)) != 1 {
		t.Fatalf("%d %v", code, m)
	}
}

// TestStatusPage_Chromium renders /status in headless Chromium, as an
// operator would see it, and checks what it shows and that the screenshot
// is a picture, not a blank page. Without Chromium it skips, unless
// MESHGATE_REQUIRE_BROWSER=1 (CI installs Debian's chromium).
func TestStatusPage_Chromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("MESHGATE_REQUIRE_BROWSER") == "1" {
			t.Fatal("chromium is not installed")
		}
		t.Skip("install Debian's chromium to run the status page test")
	}
	g := start(t, server.Config{Plugins: func() []server.PluginStatus {
		return []server.PluginStatus{{Name: "storage", Up: true}, {Name: "presence", Up: false, Restarts: 3}}
	}}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/x")
	c := g.dial("graphql-transport-ws")
	c.init(alice)
	c.subscribe("s", streamQuery, map[string]any{"q": q})
	g.publish(alice, "user:alice/x", "v1", nil)
	c.next("s")

	page := strings.TrimSuffix(g.url, "/graphql") + "/status#token=" + g.token("ops", "browser", "admin")
	dir := t.TempDir()
	run := func(extra ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync", "--ignore-certificate-errors",
			"--user-data-dir=" + filepath.Join(dir, "profile"), "--window-size=1200,900", "--virtual-time-budget=5000"}, extra...)
		out, err := exec.CommandContext(ctx, chromium, append(args, page)...).Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", extra, err)
		}
		return out
	}
	dom := string(run("--dump-dom"))
	for _, want := range []string{`id="state" class="ok">ready`, "WebSocket streams", `<td class="n">1</td>`, "presence", "DOWN", "3 restarts", "100.0% of the ring", "<polyline"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	shot := filepath.Join(dir, "status.png")
	run("--screenshot=" + shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	colors := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	if b.Dx() < 800 || len(colors) < 20 {
		t.Fatalf("screenshot %dx%d with %d colours: blank?", b.Dx(), b.Dy(), len(colors))
	}
	t.Logf("screenshot %dx%d, %d colours: %s", b.Dx(), b.Dy(), len(colors), shot)
}
