package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"meshgate/internal/faults"
	"meshgate/server"
	"meshgate/shard"
)

const (
	webApp  = "http://localhost:3000"
	elsewhr = "https://evil.example"
)

// preflight sends what a browser sends before a cross-origin POST with a
// token: no Authorization, only the Access-Control-Request-* headers.
func (g *gateway) preflight(origin string) (*http.Response, string) {
	g.t.Helper()
	req, _ := http.NewRequest("OPTIONS", g.url, nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,last-event-id")
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestCORS: with cors.allowed_origins set, a listed origin gets preflight
// answers (without a token, before any work: even with every request
// failing by fault injection) and Allow-Origin on its requests and
// streams; another origin gets no CORS headers and its WebSocket upgrade
// is refused with 403.
func TestCORS(t *testing.T) {
	g := start(t, server.Config{CORS: server.CORSConfig{AllowedOrigins: []string{webApp}}}, shard.Config{})
	alice := g.token("alice", "laptop", "publish")

	t.Run("preflight_allowed", func(t *testing.T) {
		resp, body := g.preflight(webApp)
		h := resp.Header
		if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != webApp {
			t.Fatalf("%d %v %s", resp.StatusCode, h, body)
		}
		for _, want := range []string{"Authorization", "Content-Type", "Accept", "Last-Event-ID", "Apollo-Require-Preflight"} {
			if !strings.Contains(h.Get("Access-Control-Allow-Headers"), want) {
				t.Errorf("Allow-Headers %q lacks %s", h.Get("Access-Control-Allow-Headers"), want)
			}
		}
		if h.Get("Access-Control-Allow-Methods") != "GET, POST" || h.Get("Access-Control-Max-Age") != "600" {
			t.Errorf("methods %q max-age %q", h.Get("Access-Control-Allow-Methods"), h.Get("Access-Control-Max-Age"))
		}
		if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
			t.Errorf("Vary %q", h.Values("Vary"))
		}
		if h.Get("Access-Control-Allow-Credentials") != "" {
			t.Error("credentials allowed")
		}
	})
	t.Run("preflight_refused", func(t *testing.T) {
		resp, body := g.preflight(elsewhr)
		if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(body, `"FORBIDDEN"`) {
			t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
		}
	})
	t.Run("request_allowed", func(t *testing.T) {
		resp := g.post(alice, "application/json", `{ me { user } }`, nil, "Origin", webApp)
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != webApp ||
			!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Retry-After") {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("request_refused", func(t *testing.T) {
		resp := g.post(alice, "application/json", `{ me { user } }`, nil, "Origin", elsewhr)
		if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Expose-Headers") != "" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("streams_allowed", func(t *testing.T) {
		q := g.createQueue(alice)
		resp := g.post(alice, "text/event-stream", streamQuery, map[string]any{"q": q}, "Origin", webApp)
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != webApp {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
		resp = g.post(alice, `multipart/mixed;subscriptionSpec="1.0"`, streamQuery, map[string]any{"q": q}, "Origin", webApp)
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != webApp || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/mixed") {
			t.Fatalf("multipart: %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		dial := func(origin string) (*http.Response, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			hdr := http.Header{}
			if origin != "" {
				hdr.Set("Origin", origin)
			}
			c, resp, err := websocket.Dial(ctx, g.wsURL, &websocket.DialOptions{HTTPClient: g.client, HTTPHeader: hdr, Subprotocols: []string{"graphql-transport-ws"}})
			if err == nil {
				c.CloseNow()
			}
			return resp, err
		}
		for _, origin := range []string{webApp, "", "https://" + strings.TrimPrefix(strings.TrimSuffix(g.url, "/graphql"), "https://")} {
			if _, err := dial(origin); err != nil {
				t.Errorf("origin %q: %v", origin, err)
			}
		}
		resp, err := dial(elsewhr)
		if err == nil || resp == nil || resp.StatusCode != 403 {
			t.Fatalf("another origin: %v %v", resp, err)
		}
	})
}

// TestCORS_PreflightDoesNoWork: a preflight is answered before fault
// injection, authentication or rate limits run.
func TestCORS_PreflightDoesNoWork(t *testing.T) {
	g := start(t, server.Config{
		CORS:   server.CORSConfig{AllowedOrigins: []string{webApp}},
		Faults: faults.Config{ErrorProbability: 1},
	}, shard.Config{})
	for range 20 {
		if resp, body := g.preflight(webApp); resp.StatusCode != 204 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
}

// TestCORS_Off: without allowed origins nothing changes: no CORS headers,
// OPTIONS is a method /graphql does not serve, any Origin may upgrade.
func TestCORS_Off(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	resp, _ := g.preflight(webApp)
	if resp.StatusCode != 405 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	alice := g.token("alice", "laptop")
	if r := g.post(alice, "application/json", `{ me { user } }`, nil, "Origin", webApp); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("%v", r.Header)
	}
}

// TestCORS_Wildcard: "*" answers every origin with "*", never with
// credentials.
func TestCORS_Wildcard(t *testing.T) {
	g := start(t, server.Config{CORS: server.CORSConfig{AllowedOrigins: []string{"*"}}}, shard.Config{})
	resp, _ := g.preflight(elsewhr)
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
}

func TestCORSConfig_Check(t *testing.T) {
	err := server.CORSConfig{AllowedOrigins: []string{"http://localhost:3000", "*", "localhost:3000", "https://a.example/app"}}.Check()
	if err == nil || !strings.Contains(err.Error(), "cors.allowed_origins[2]") || !strings.Contains(err.Error(), "cors.allowed_origins[3]") || strings.Contains(err.Error(), "[0]") {
		t.Fatalf("%v", err)
	}
}
