package server_test

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"meshgate/server"
	"meshgate/shard"
)

func TestMetrics(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	admin := g.token("ops", "prometheus", "admin")
	scrape := func(tok string) (int, string) {
		req, _ := http.NewRequest("GET", strings.TrimSuffix(g.url, "/graphql")+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	value := func(body, name string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no %s in\n%s", name, body)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	if code, _ := scrape(""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := scrape(alice); code != 403 {
		t.Fatalf("no admin scope: %d", code)
	}

	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/m")
	c := g.dial("graphql-transport-ws")
	c.init(alice)
	c.subscribe("s", streamQuery, map[string]any{"q": q})
	for i := range 3 {
		g.publish(alice, "user:alice/m", strconv.Itoa(i), nil)
		c.next("s")
	}
	// The writer observes publish-to-write after its write returns, so the
	// client may read the third notification before the third observation:
	// scrape until it is in, or report what the last scrape said.
	var code int
	var body string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if code, body = scrape(admin); code != 200 {
			t.Fatalf("scrape: %d", code)
		}
		if value(body, "meshgate_publish_to_write_seconds_count") == 3 || time.Now().After(deadline) {
			break
		}
	}
	for name, want := range map[string]float64{
		"meshgate_queues":                              1,
		"meshgate_subscriptions":                       1,
		"meshgate_deliveries_total":                    3,
		`meshgate_notifications_total{kind="CHANGED"}`: 3,
		`meshgate_connections{transport="websocket"}`:  1,
		"meshgate_queues_created_total":                1,
		"meshgate_publish_to_write_seconds_count":      3,
	} {
		if got := value(body, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestMetrics_DashboardQueriesExist keeps deploy/grafana/meshgate.json
// honest: every meshgate_ metric it queries is one /metrics serves.
func TestMetrics_DashboardQueriesExist(t *testing.T) {
	g := start(t, server.Config{Plugins: func() []server.PluginStatus {
		return []server.PluginStatus{{Name: "user", Up: true, Restarts: 1}}
	}}, shard.Config{})
	req, _ := http.NewRequest("GET", strings.TrimSuffix(g.url, "/graphql")+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+g.token("ops", "prom", "admin"))
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	served := string(b)
	dash, err := os.ReadFile("../deploy/grafana/meshgate.json")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`meshgate_[a-z_]+`).FindAllString(string(dash), -1)
	if len(names) < 5 {
		t.Fatalf("dashboard queries %d meshgate metrics", len(names))
	}
	// Series that exist only with peers (one node has none to label).
	clusterOnly := map[string]bool{"meshgate_cluster_forwarded_total": true}
	for _, n := range names {
		base := strings.TrimSuffix(n, "_bucket")
		if !strings.Contains(served, "# TYPE "+base+" ") && !clusterOnly[base] {
			t.Errorf("the dashboard queries %s, which /metrics does not serve", n)
		}
	}
}

// TestMetrics_StreamsByTransport: an Apollo multipart stream is counted as
// transport="multipart", not as SSE, in /metrics and in /status.json.
func TestMetrics_StreamsByTransport(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")
	admin := g.token("ops", "prometheus", "admin")
	q := g.createQueue(alice)
	g.subscribe(alice, q, "user:alice/m")
	if r := g.post(alice, "text/event-stream", streamQuery, map[string]any{"q": q}); r.StatusCode != 200 {
		t.Fatalf("SSE: %d", r.StatusCode)
	}
	for range 2 {
		if r := g.post(alice, `multipart/mixed;subscriptionSpec="1.0"`, streamQuery, map[string]any{"q": q}); r.StatusCode != 200 {
			t.Fatalf("multipart: %d", r.StatusCode)
		}
	}
	get := func(path string) string {
		req, _ := http.NewRequest("GET", strings.TrimSuffix(g.url, "/graphql")+path, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	// A stream joins the counts just after its headers are written.
	want := []string{`meshgate_connections{transport="multipart"} 2`, `meshgate_connections{transport="sse"} 1`, `meshgate_connections{transport="websocket"} 0`}
	var body string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		body = get("/metrics")
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(body, w+"\n")
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %q in\n%s", want, body)
		}
	}
	if st := get("/status.json"); !strings.Contains(st, `"websocket":0,"sse":1,"multipart":2`) {
		t.Errorf("status.json counts: %s", st)
	}
}
