package server

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"time"
)

//go:embed status/index.html
var statusFS embed.FS

// sample is one point of the status page's charts.
type sample struct {
	T             int64  `json:"t"` // unix seconds
	Deliveries    uint64 `json:"deliveries"`
	Queues        int    `json:"queues"`
	Subscriptions int    `json:"subscriptions"`
	Streams       int    `json:"streams"`
}

// statusHistory keeps the last samples (ten minutes at one per 5 s).
type statusHistory struct {
	mu      sync.Mutex
	samples []sample
	started time.Time
}

const (
	sampleEvery = 5 * time.Second
	maxSamples  = 120
)

// sampleLoop records a sample every 5 s until ctx ends.
func (s *Server) sampleLoop(ctx context.Context) {
	s.status.record(s)
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.status.record(s)
		}
	}
}

func (h *statusHistory) record(s *Server) {
	st := s.store.Stats()
	p := sample{T: s.cfg.Now().Unix(), Deliveries: s.store.Counters().Deliveries.Load(), Queues: st.Queues, Subscriptions: st.Subscriptions, Streams: s.wheel.countByKind().total()}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples = append(h.samples, p)
	if len(h.samples) > maxSamples {
		h.samples = append(h.samples[:0], h.samples[len(h.samples)-maxSamples:]...)
	}
}

// statusReport is what /status.json returns.
type statusReport struct {
	Node struct {
		Name          string  `json:"name"`
		Started       string  `json:"started"`
		UptimeSeconds float64 `json:"uptime_seconds"`
		Ready         bool    `json:"ready"`
		Goroutines    int     `json:"goroutines"`
		HeapMiB       float64 `json:"heap_mib"`
	} `json:"node"`
	Counts struct {
		Queues        int    `json:"queues"`
		Subscriptions int    `json:"subscriptions"`
		Resources     int    `json:"resources"`
		WebSocket     int    `json:"websocket"`
		SSE           int    `json:"sse"`
		Multipart     int    `json:"multipart"`
		Deliveries    uint64 `json:"deliveries"`
		Overflows     uint64 `json:"overflows"`
	} `json:"counts"`
	Plugins []PluginStatus `json:"plugins"`
	Members []member       `json:"members"`
	History []sample       `json:"history"`
}

type member struct {
	Name      string `json:"name"`
	Healthy   bool   `json:"healthy"`
	Share     string `json:"share"`
	Queues    int    `json:"queues"`
	Resources int    `json:"resources"`
	Misplaced int    `json:"misplaced"`
	Self      bool   `json:"self"`
}

func (s *Server) serveStatusJSON(w http.ResponseWriter, r *http.Request) {
	var rep statusReport
	rep.Node.Name = s.node.Name()
	rep.Node.Started = s.status.started.UTC().Format(time.RFC3339)
	rep.Node.UptimeSeconds = s.cfg.Now().Sub(s.status.started).Seconds()
	rep.Node.Ready = s.cfg.Ready == nil || s.cfg.Ready()
	rep.Node.Goroutines = runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rep.Node.HeapMiB = float64(ms.HeapInuse) / (1 << 20)
	st := s.store.Stats()
	rep.Counts.Queues, rep.Counts.Subscriptions, rep.Counts.Resources = st.Queues, st.Subscriptions, st.Resources
	n := s.wheel.countByKind()
	rep.Counts.WebSocket, rep.Counts.SSE, rep.Counts.Multipart = n.ws, n.sse, n.multipart
	rep.Counts.Deliveries = s.store.Counters().Deliveries.Load()
	rep.Counts.Overflows = s.store.Counters().Overflows.Load()
	rep.Plugins = []PluginStatus{}
	if s.cfg.Plugins != nil {
		rep.Plugins = s.cfg.Plugins()
	}
	for _, m := range s.node.Members(r.Context()) {
		rep.Members = append(rep.Members, member{Name: m.Name, Healthy: m.Up, Share: fmt.Sprintf("%.1f%%", 100*m.Share),
			Queues: m.Queues, Resources: m.Resources, Misplaced: m.Misplaced, Self: m.Name == s.node.Name()})
	}
	s.status.mu.Lock()
	rep.History = append([]sample(nil), s.status.samples...)
	s.status.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(rep)
}

func serveStatusPage(w http.ResponseWriter, _ *http.Request) {
	b, _ := statusFS.ReadFile("status/index.html")
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}
