package main

import (
	"fmt"
	"io"
)

// report is one run's figures.
type report struct {
	Label          string  `json:"label"`
	Target         string  `json:"target"`
	Mode           string  `json:"mode"`
	Subscribers    int     `json:"subscribers"`
	Events         int     `json:"events"`
	Rate           float64 `json:"rate"`
	ConnectSeconds float64 `json:"connect_seconds"`
	ConnsPerSecond float64 `json:"conns_per_second"`
	// ConnectCPUMicros is the server's CPU (child processes included) per
	// subscriber set up: what bounds a reconnect storm on a busy machine.
	ConnectCPUMicros float64 `json:"connect_cpu_us_per_subscriber,omitempty"`
	// TLSResumed counts the subscribers whose TLS handshake resumed a
	// session (-resume).
	TLSResumed          int64   `json:"tls_resumed,omitempty"`
	WarmupSeconds       float64 `json:"warmup_seconds"`
	ServerRSSMiB        float64 `json:"server_rss_mib"`
	RSSPerSubscriberKiB float64 `json:"rss_per_subscriber_kib"`
	ServerThreads       int64   `json:"server_threads"`
	PublishSeconds      float64 `json:"publish_seconds"`
	WindowSeconds       float64 `json:"window_seconds"`
	Delivered           int64   `json:"delivered"`
	Lost                int64   `json:"lost"`
	Duplicates          int     `json:"duplicates"`
	// Announced counts the notifications without an event of the bench's
	// (RESYNC, OVERFLOW…) that subscribers received once live: a
	// loss the server told them of. LostUnannounced is the part of Lost
	// at subscribers that received none, which the server's guarantees
	// (DESIGN.md) rule out.
	Announced            int64   `json:"announced,omitempty"`
	LostUnannounced      int64   `json:"lost_unannounced,omitempty"`
	DeliveriesPerSecond  float64 `json:"deliveries_per_second"`
	LatencyP50ms         float64 `json:"latency_p50_ms"`
	LatencyP99ms         float64 `json:"latency_p99_ms"`
	LatencyMaxms         float64 `json:"latency_max_ms"`
	ServerCPUSeconds     float64 `json:"server_cpu_seconds"`
	CPUSecondsPerMillion float64 `json:"cpu_seconds_per_million_deliveries"`
	// ChildCPUSeconds is the part of ServerCPUSeconds spent in the
	// server's child processes (meshgate's plugins).
	ChildCPUSeconds float64 `json:"child_cpu_seconds,omitempty"`
	// CPUMicrosPerEvent is ServerCPUSeconds per published event.
	CPUMicrosPerEvent float64 `json:"cpu_us_per_event,omitempty"`
	// Polls counts the poll answers the readers received while measuring
	// (poll mode): Delivered/Polls is how full a page was.
	Polls int64 `json:"polls,omitempty"`
}

func (r *report) print(w io.Writer) {
	if r.Delivered == 0 && r.Lost == 0 {
		fmt.Fprintf(w, "== %s: %d idle subscribers", r.Label, r.Subscribers)
	} else {
		fmt.Fprintf(w, "== %s: %d subscribers, %d events", r.Label, r.Subscribers, r.Events)
	}
	if r.Rate > 0 {
		fmt.Fprintf(w, " at %.0f/s", r.Rate)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "connect        %.2f s (%.0f conns/s, server CPU %.0f µs each), warm-up %.2f s\n", r.ConnectSeconds, r.ConnsPerSecond, r.ConnectCPUMicros, r.WarmupSeconds)
	if r.TLSResumed > 0 {
		fmt.Fprintf(w, "tls            %d of %d sessions resumed\n", r.TLSResumed, r.Subscribers)
	}
	if r.ServerRSSMiB > 0 {
		fmt.Fprintf(w, "server memory  %.1f MiB RSS, %.2f KiB per subscriber, %d threads\n", r.ServerRSSMiB, r.RSSPerSubscriberKiB, r.ServerThreads)
	}
	if r.Events == 0 || r.Delivered == 0 && r.Lost == 0 {
		return
	}
	fmt.Fprintf(w, "deliveries     %d in %.2f s: %.0f/s (publishing took %.2f s)\n", r.Delivered, r.WindowSeconds, r.DeliveriesPerSecond, r.PublishSeconds)
	fmt.Fprintf(w, "latency        p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", r.LatencyP50ms, r.LatencyP99ms, r.LatencyMaxms)
	fmt.Fprintf(w, "lost %d, duplicated %d\n", r.Lost, r.Duplicates)
	if r.Lost > 0 || r.Announced > 0 {
		fmt.Fprintf(w, "announced      %d losses told (RESYNC, OVERFLOW…); %d lost at subscribers told nothing\n", r.Announced, r.LostUnannounced)
	}
	if r.Polls > 0 {
		fmt.Fprintf(w, "polls          %d answered, %.1f notifications each\n", r.Polls, float64(r.Delivered)/float64(r.Polls))
	}
	if r.ServerCPUSeconds > 0 {
		fmt.Fprintf(w, "server CPU     %.2f s (%.2f s in child processes): %.2f CPU-s per million deliveries, %.0f µs per event\n", r.ServerCPUSeconds, r.ChildCPUSeconds, r.CPUSecondsPerMillion, r.CPUMicrosPerEvent)
	}
}
