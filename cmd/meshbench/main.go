package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "meshbench:", err)
		os.Exit(1)
	}
}

type config struct {
	target   string   // meshgate, gqlgen, raw
	urls     []string // base URLs of the server's nodes, e.g. http://127.0.0.1:8443; subscribers are spread over them
	pids     []int
	subs     int
	events   int
	rate     float64 // events/s; 0 = as fast as the publisher goes
	mode     string  // ws or poll
	setup    string  // http or ws: where meshgate subscribers make their queue and subscription
	sources  []string
	keyFile  string
	idleOnly bool
	settle   time.Duration
	timeout  time.Duration
	parallel int
	resume   bool // TLS: resume sessions with a ticket
	jsonOut  bool
	out      string
	label    string
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("meshbench", flag.ContinueOnError)
	var c config
	var sources string
	fs.StringVar(&c.target, "target", "meshgate", "server kind: meshgate, centrifugo, gqlgen (bench/gqlgenref) or raw (bench/rawws)")
	var urls, pids string
	fs.StringVar(&urls, "url", "http://127.0.0.1:8443", "server base URL (http or https); for a cluster, the nodes' URLs separated by commas: subscriber i connects to node i mod n, the publisher to the first")
	fs.StringVar(&pids, "pid", "", "server process ids separated by commas, for CPU and RSS from /proc (summed over a cluster's nodes; empty: not measured)")
	fs.IntVar(&c.subs, "subs", 1000, "subscribers")
	fs.IntVar(&c.events, "events", 200, "events to publish")
	fs.Float64Var(&c.rate, "rate", 0, "events per second (0: as fast as the publisher goes)")
	fs.StringVar(&c.mode, "mode", "ws", "ws (WebSocket subscribers) or poll (HTTP long-poll readers; meshgate only)")
	fs.StringVar(&c.setup, "setup", "http", "meshgate: make each subscriber's queue and subscription with HTTP requests (http) or with mutations on its WebSocket (ws: one connection per device)")
	fs.StringVar(&sources, "sources", "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5", "source addresses for client sockets, so ephemeral ports last")
	fs.StringVar(&c.keyFile, "key", "meshgate-data/dev-hs256.key", "meshgate's HS256 key file, to mint tokens")
	fs.BoolVar(&c.idleOnly, "idle", false, "connect and subscribe, measure memory, publish nothing")
	fs.DurationVar(&c.settle, "settle", 5*time.Second, "wait after connecting before measuring idle memory")
	fs.DurationVar(&c.timeout, "timeout", 120*time.Second, "give up waiting for deliveries after this long without progress")
	fs.IntVar(&c.parallel, "parallel", 64, "concurrent connection set-ups")
	fs.BoolVar(&c.resume, "resume", false, "TLS: subscribers resume a TLS session with a ticket, as devices that connected before do (one full handshake first; the ticket each connection gets is the next one's)")
	fs.BoolVar(&c.jsonOut, "json", false, "print the report as JSON")
	fs.StringVar(&c.out, "out", "", "append the report as a JSON line to this file")
	fs.StringVar(&c.label, "label", "", "a name for this run in the report")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.sources = strings.Split(sources, ",")
	for _, u := range strings.Split(urls, ",") {
		c.urls = append(c.urls, strings.TrimSuffix(strings.TrimSpace(u), "/"))
	}
	for _, p := range strings.Split(pids, ",") {
		if p = strings.TrimSpace(p); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("-pid: %w", err)
			}
			c.pids = append(c.pids, n)
		}
	}
	if c.mode == "poll" && c.target != "meshgate" {
		return fmt.Errorf("poll mode needs -target meshgate")
	}
	if c.label == "" {
		c.label = c.target + "/" + c.mode
	}
	r, err := bench(ctx, c)
	if err != nil {
		return err
	}
	if c.out != "" {
		f, err := os.OpenFile(c.out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := json.NewEncoder(f).Encode(r); err != nil {
			return err
		}
	}
	if c.jsonOut {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	r.print(os.Stdout)
	return nil
}
