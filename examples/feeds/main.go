package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"meshgate/plugins/sdk"
)

type feeds struct {
	mu    sync.Mutex
	posts map[string]int
}

func (*feeds) Info() sdk.Info {
	return sdk.Info{Name: "feeds", Version: "0.1.0", Schemes: []string{"feeds"}}
}

func (f *feeds) etag(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprint(f.posts[name])
}

func (f *feeds) Authorize(_ context.Context, _ sdk.Principal, resource, _ string) (sdk.Decision, error) {
	return sdk.Allow(f.etag(strings.TrimPrefix(resource, "feeds:"))), nil
}

func (f *feeds) Current(_ context.Context, resources []string) (map[string]string, error) {
	out := map[string]string{}
	for _, r := range resources {
		out[r] = f.etag(strings.TrimPrefix(r, "feeds:"))
	}
	return out, nil
}

// Run serves the webhook until ctx ends.
func (f *feeds) Run(ctx context.Context, h sdk.Host) error {
	log := sdk.Logger()
	addr := os.Getenv("FEEDS_LISTEN")
	if addr == "" {
		addr = "127.0.0.1:9090"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /feeds/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil || !json.Valid(body) {
			http.Error(w, "send a JSON body", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.posts[name]++
		etag := fmt.Sprint(f.posts[name])
		f.mu.Unlock()
		if err := h.Emit(r.Context(), sdk.Event{Kind: sdk.Changed, Resource: "feeds:" + name, Etag: etag, Payload: body}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		log.Info("feed post", "feed", name, "etag", etag)
		w.WriteHeader(http.StatusAccepted)
	})
	srv := &http.Server{Handler: mux}
	go func() { <-ctx.Done(); srv.Close() }()
	log.Info("feeds webhook listening", "addr", l.Addr().String())
	if err := srv.Serve(l); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func main() { sdk.Serve(&feeds{posts: map[string]int{}}) }
