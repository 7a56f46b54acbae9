package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"meshgate/server"
)

const resource = "user:bench/feed"

// sub is one subscriber's view of the run.
type sub struct {
	idx    int
	conn   net.Conn
	rd     io.Reader
	wmu    sync.Mutex
	mu     sync.Mutex
	seen   []uint64 // bitmap of event indexes received
	lat    []int64  // publish→receive, nanoseconds
	dups   int
	warm   atomic.Bool
	last   atomic.Int64 // unix ns of the last measured delivery
	count  atomic.Int64
	queue  string       // meshgate
	token  string       // meshgate
	after  uint64       // poll mode
	polls  atomic.Int64 // poll mode: answers received
	events int
	base   string // the node it talks to
	// seq is the last queue seq received (meshgate streams), and
	// announced counts notifications without an event of the bench's
	// (RESYNC, OVERFLOW, …: a loss the server announced) received
	// since its first warm-up event.
	seq       atomic.Uint64
	announced atomic.Int64
}

func (s *sub) record(i, t int64, now int64) {
	if i < 0 {
		s.warm.Store(true)
		return
	}
	if i >= int64(s.events) {
		return
	}
	s.mu.Lock()
	w, b := i/64, uint64(1)<<(i%64)
	if s.seen[w]&b != 0 {
		s.dups++
		s.mu.Unlock()
		return
	}
	s.seen[w] |= b
	s.lat = append(s.lat, now-t)
	s.mu.Unlock()
	s.last.Store(now)
	s.count.Add(1)
}

type bencher struct {
	c      config
	http   *http.Client
	pubTok string
	key    server.Key
	subs   []*sub
	next   atomic.Uint64 // round robin over source addresses
	// wsTLS is the subscribers' TLS configuration; with -resume it holds
	// the session cache they share, and resumed counts the handshakes
	// that resumed.
	wsTLS   *tls.Config
	resumed atomic.Int64
}

func bench(ctx context.Context, c config) (*report, error) {
	b := &bencher{c: c, wsTLS: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // loopback benchmark against a self-signed certificate
	b.http = &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, // loopback benchmark against a self-signed certificate
		MaxIdleConnsPerHost: max(64, c.subs),
		DialContext:         b.dial,
	}}
	if c.target == "meshgate" {
		b.key = server.Key{ID: server.DevKeyID, Alg: "HS256", SecretFile: c.keyFile}
		tok, err := server.Mint(b.key, "bench", "publisher", []string{"publish"}, 24*time.Hour, time.Now())
		if err != nil {
			return nil, fmt.Errorf("minting with %s: %w", c.keyFile, err)
		}
		b.pubTok = tok
	}
	r := &report{Label: c.label, Target: c.target, Mode: c.mode, Subscribers: c.subs, Events: c.events, Rate: c.rate}
	rss0 := rssBytes(c.pids)

	if c.resume {
		// One device connected before: its ticket is everyone's first.
		b.wsTLS.ClientSessionCache = tls.NewLRUClientSessionCache(len(c.urls))
		for _, u := range c.urls {
			if err := b.ticket(ctx, u); err != nil {
				return nil, fmt.Errorf("first TLS session: %w", err)
			}
		}
	}

	// Connect and subscribe everyone.
	setupCPU0, setupChild0 := cpuSeconds(c.pids)
	start := time.Now()
	b.subs = make([]*sub, c.subs)
	errs := make(chan error, c.subs)
	sem := make(chan struct{}, c.parallel)
	var wg sync.WaitGroup
	for i := range b.subs {
		s := &sub{idx: i, base: c.urls[i%len(c.urls)], events: c.events, seen: make([]uint64, (c.events+63)/64), lat: make([]int64, 0, c.events)}
		b.subs[i] = s
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := b.connect(ctx, s); err != nil {
				errs <- fmt.Errorf("subscriber %d: %w", s.idx, err)
				return
			}
			go b.read(ctx, s)
		}()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	r.ConnectSeconds = time.Since(start).Seconds()
	r.ConnsPerSecond = float64(c.subs) / r.ConnectSeconds
	r.TLSResumed = b.resumed.Load()
	if len(c.pids) > 0 {
		cpu, child := cpuSeconds(c.pids)
		r.ConnectCPUMicros = (cpu + child - setupCPU0 - setupChild0) / float64(c.subs) * 1e6
	}
	defer b.closeAll()

	// Warm up: every subscriber must receive an event before we measure,
	// so every subscription is live.
	warmStart := time.Now()
	for n := 0; ; n++ {
		if err := b.publish(ctx, -1); err != nil {
			return nil, fmt.Errorf("warm-up publish: %w", err)
		}
		deadline := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(deadline) && b.warmCount() < c.subs {
			time.Sleep(10 * time.Millisecond)
		}
		if b.warmCount() == c.subs {
			break
		}
		if time.Since(warmStart) > c.timeout {
			return nil, fmt.Errorf("warm-up: only %d of %d subscribers live after %s", b.warmCount(), c.subs, c.timeout)
		}
	}
	r.WarmupSeconds = time.Since(warmStart).Seconds()

	time.Sleep(c.settle)
	if len(c.pids) > 0 {
		rss1 := rssBytes(c.pids)
		r.ServerRSSMiB = float64(rss1) / (1 << 20)
		r.RSSPerSubscriberKiB = float64(rss1-rss0) / float64(c.subs) / 1024
		r.ServerThreads = threads(c.pids)
	}
	if c.idleOnly {
		return r, nil
	}

	// Measure.
	cpu0, child0 := cpuSeconds(c.pids)
	polls0 := b.polls()
	t0 := time.Now()
	var interval time.Duration
	if c.rate > 0 {
		interval = time.Duration(float64(time.Second) / c.rate)
	}
	for i := 0; i < c.events; i++ {
		if interval > 0 {
			if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		if err := b.publish(ctx, int64(i)); err != nil {
			return nil, fmt.Errorf("publish %d: %w", i, err)
		}
	}
	r.PublishSeconds = time.Since(t0).Seconds()
	want := int64(c.subs) * int64(c.events)
	lastProgress, lastCount := time.Now(), int64(-1)
	for {
		got := b.delivered()
		if got >= want {
			break
		}
		if got != lastCount {
			lastProgress, lastCount = time.Now(), got
		} else if time.Since(lastProgress) > min(c.timeout, 10*time.Second) {
			break // what is missing is lost
		}
		time.Sleep(20 * time.Millisecond)
	}
	cpu1, child1 := cpuSeconds(c.pids)
	r.Polls = b.polls() - polls0
	var lastNs int64
	var lats []int64
	for _, s := range b.subs {
		s.mu.Lock()
		lats = append(lats, s.lat...)
		r.Duplicates += s.dups
		s.mu.Unlock()
		r.Announced += s.announced.Load()
		lastNs = max(lastNs, s.last.Load())
	}
	r.Delivered = b.delivered()
	r.Lost = want - r.Delivered
	if r.Lost > 0 {
		b.explainLoss(ctx, r)
	}
	window := time.Unix(0, lastNs).Sub(t0).Seconds()
	if r.Delivered > 0 && window > 0 {
		r.DeliveriesPerSecond = float64(r.Delivered) / window
		r.WindowSeconds = window
	}
	if len(c.pids) > 0 && r.Delivered > 0 {
		r.ServerCPUSeconds = cpu1 - cpu0 + child1 - child0
		r.ChildCPUSeconds = child1 - child0
		r.CPUSecondsPerMillion = r.ServerCPUSeconds / float64(r.Delivered) * 1e6
		r.CPUMicrosPerEvent = r.ServerCPUSeconds / float64(c.events) * 1e6
	}
	slices.Sort(lats)
	if n := len(lats); n > 0 {
		pct := func(p float64) float64 { return float64(lats[min(n-1, int(p*float64(n)))]) / 1e6 }
		r.LatencyP50ms, r.LatencyP99ms, r.LatencyMaxms = pct(0.50), pct(0.99), float64(lats[n-1])/1e6
	}
	return r, nil
}

// polls is how many poll answers the readers have received.
func (b *bencher) polls() int64 {
	var n int64
	for _, s := range b.subs {
		n += s.polls.Load()
	}
	return n
}

func (b *bencher) warmCount() int {
	n := 0
	for _, s := range b.subs {
		if s.warm.Load() {
			n++
		}
	}
	return n
}

func (b *bencher) delivered() int64 {
	var n int64
	for _, s := range b.subs {
		n += s.count.Load()
	}
	return n
}

// dial spreads client sockets over the source addresses.
func (b *bencher) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	src := b.c.sources[b.next.Add(1)%uint64(len(b.c.sources))]
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 30 * time.Second}
	return d.DialContext(ctx, network, addr)
}

func (b *bencher) wsURL(base, path string) string {
	u := base + path
	return "ws" + strings.TrimPrefix(u, "http")
}

// connect prepares s: for meshgate, a queue subscribed to the resource;
// then, in ws mode, a WebSocket with a live subscription.
func (b *bencher) connect(ctx context.Context, s *sub) error {
	var proto []string
	var path string
	switch b.c.target {
	case "meshgate":
		tok, err := server.Mint(b.key, "bench", fmt.Sprint("d", s.idx), nil, 24*time.Hour, time.Now())
		if err != nil {
			return err
		}
		s.token = tok
		if b.c.setup == "ws" && b.c.mode == "ws" {
			proto, path = []string{"graphql-transport-ws"}, "/graphql"
			break // queue and subscription are made on the WebSocket itself
		}
		var out struct {
			CreateQueue struct{ Name string }
		}
		if err := b.gqlAt(ctx, s.base, tok, `mutation { createQueue(ttlSeconds: 3600) { name } }`, nil, &out); err != nil {
			return err
		}
		s.queue = out.CreateQueue.Name
		if err := b.gqlAt(ctx, s.base, tok, `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag } }`, map[string]any{"q": s.queue, "r": resource}, nil); err != nil {
			return err
		}
		if b.c.mode == "poll" {
			return nil
		}
		proto, path = []string{"graphql-transport-ws"}, "/graphql"
	case "gqlgen":
		proto, path = []string{"graphql-transport-ws"}, "/query"
	case "raw":
		path = "/ws"
	case "centrifugo":
		path = "/connection/websocket"
	default:
		return fmt.Errorf("unknown target %q", b.c.target)
	}
	d := ws.Dialer{Protocols: proto, NetDial: b.dial, TLSConfig: b.wsTLS, Timeout: 30 * time.Second}
	conn, br, _, err := d.Dial(ctx, b.wsURL(s.base, path))
	if err != nil {
		return err
	}
	if tc, ok := conn.(*tls.Conn); ok && tc.ConnectionState().DidResume {
		b.resumed.Add(1)
	}
	s.conn, s.rd = conn, conn
	if br != nil {
		s.rd = io.MultiReader(br, conn)
	}
	if b.c.target == "centrifugo" {
		return b.centrifugoHello(s)
	}
	if proto == nil {
		return nil
	}
	init := map[string]any{"type": "connection_init", "payload": map[string]any{}}
	if s.token != "" {
		init["payload"] = map[string]any{"authorization": "Bearer " + s.token}
	}
	if err := s.send(init); err != nil {
		return err
	}
	for { // until connection_ack
		p, err := s.readMessage()
		if err != nil {
			return fmt.Errorf("waiting for connection_ack: %w", err)
		}
		if bytes.Contains(p, []byte(`"connection_ack"`)) {
			break
		}
	}
	if b.c.target == "meshgate" && s.queue == "" {
		if err := s.setupOverWS(); err != nil {
			return err
		}
	}
	q := `subscription { events { i t } }`
	vars := map[string]any{}
	if b.c.target == "meshgate" {
		q = `subscription($q:String!){ notifications(queue:$q) { seq payload } }`
		vars["q"] = s.queue
	}
	return s.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": q, "variables": vars}})
}

// ticket makes one TLS connection to base with the subscribers' session
// cache and reads until the server's session ticket is in it.
func (b *bencher) ticket(ctx context.Context, base string) error {
	if !strings.HasPrefix(base, "https://") {
		return nil
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: b.wsTLS, DialContext: b.dial}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// setupOverWS makes s's queue and subscription with mutations on its
// WebSocket (graphql-transport-ws allows any operation), as a device that
// reconnects with one connection does.
func (s *sub) setupOverWS() error {
	var q struct {
		Data struct{ CreateQueue struct{ Name string } }
	}
	if err := s.operation("q", `mutation { createQueue(ttlSeconds: 3600) { name } }`, nil, &q); err != nil {
		return fmt.Errorf("createQueue: %w", err)
	}
	s.queue = q.Data.CreateQueue.Name
	if err := s.operation("s", `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag } }`, map[string]any{"q": s.queue, "r": resource}, nil); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	return nil
}

// operation runs one query or mutation as operation id on s's WebSocket
// and decodes its result's payload into out.
func (s *sub) operation(id, query string, vars map[string]any, out any) error {
	if err := s.send(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}}); err != nil {
		return err
	}
	for {
		p, err := s.readMessage()
		if err != nil {
			return err
		}
		var m struct {
			ID      string
			Type    string
			Payload json.RawMessage
		}
		if json.Unmarshal(p, &m) != nil || m.ID != id {
			if m.Type == "ping" {
				_ = s.send(map[string]any{"type": "pong"})
			}
			continue
		}
		switch m.Type {
		case "next":
			var r struct {
				Errors []struct{ Message string }
			}
			_ = json.Unmarshal(m.Payload, &r)
			if len(r.Errors) > 0 {
				return errors.New(r.Errors[0].Message)
			}
			if out != nil {
				return json.Unmarshal(m.Payload, out)
			}
			return nil
		case "error":
			return fmt.Errorf("%s", m.Payload)
		case "complete":
			return errors.New("completed without a result")
		}
	}
}

func (s *sub) send(v any) error {
	b, _ := json.Marshal(v)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return ws.WriteFrame(s.conn, ws.MaskFrame(ws.NewTextFrame(b)))
}

// readMessage returns the next text message, answering pings.
func (s *sub) readMessage() ([]byte, error) {
	for {
		h, err := ws.ReadHeader(s.rd)
		if err != nil {
			return nil, err
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(s.rd, p); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpPing:
			s.wmu.Lock()
			err = ws.WriteFrame(s.conn, ws.MaskFrame(ws.NewPongFrame(p)))
			s.wmu.Unlock()
			if err != nil {
				return nil, err
			}
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(p)
			return nil, fmt.Errorf("closed by server: %d %s", code, reason)
		case ws.OpText, ws.OpBinary:
			if !h.Fin {
				return nil, errors.New("fragmented message")
			}
			return p, nil
		}
	}
}

func (b *bencher) read(ctx context.Context, s *sub) {
	if b.c.mode == "poll" {
		b.poll(ctx, s)
		return
	}
	for {
		p, err := s.readMessage()
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		if b.c.target == "centrifugo" {
			if err := s.centrifugoMessages(p, now); err != nil {
				return
			}
			continue
		}
		if bytes.Contains(p, []byte(`"type":"ping"`)) {
			_ = s.send(map[string]any{"type": "pong"})
			continue
		}
		if seq, ok := numberAfter(p, []byte(`"seq":`)); ok {
			s.seq.Store(uint64(seq))
		}
		if i, t, ok := parseEvent(p); ok {
			s.record(i, t, now)
		} else if s.warm.Load() && bytes.Contains(p, []byte(`"seq":`)) {
			s.announced.Add(1)
		}
	}
}

// poll reads s's queue with HTTP long-polls.
func (b *bencher) poll(ctx context.Context, s *sub) {
	for ctx.Err() == nil {
		var out struct {
			Notifications struct {
				LastSeq uint64
				Items   []struct{ Payload json.RawMessage }
			}
		}
		err := b.gqlAt(ctx, s.base, s.token, `query($q:String!,$a:Seq){ notifications(queue:$q, after:$a, limit:1000, waitSeconds:30) { lastSeq items { payload } } }`,
			map[string]any{"q": s.queue, "a": s.after}, &out)
		if err != nil {
			return
		}
		s.polls.Add(1)
		now := time.Now().UnixNano()
		for _, it := range out.Notifications.Items {
			if i, t, ok := parseEvent(it.Payload); ok {
				s.record(i, t, now)
			}
		}
		s.after = out.Notifications.LastSeq
	}
}

// parseEvent finds "i" and "t" in a message without decoding all of it,
// so that the tool's own CPU stays small next to the server's.
func parseEvent(p []byte) (i, t int64, ok bool) {
	i, ok1 := numberAfter(p, []byte(`"i":`))
	t, ok2 := numberAfter(p, []byte(`"t":`))
	return i, t, ok1 && ok2
}

func numberAfter(p, key []byte) (int64, bool) {
	k := bytes.Index(p, key)
	if k < 0 {
		return 0, false
	}
	p = p[k+len(key):]
	p = bytes.TrimLeft(p, ` "`)
	end := 0
	for end < len(p) && (p[end] == '-' || p[end] >= '0' && p[end] <= '9') {
		end++
	}
	n, err := strconv.ParseInt(string(p[:end]), 10, 64)
	return n, err == nil
}

func (b *bencher) publish(ctx context.Context, i int64) error {
	t := time.Now().UnixNano()
	switch b.c.target {
	case "meshgate":
		return b.gql(ctx, b.pubTok, `mutation($e:String!,$p:JSON){ publish(resource:"`+resource+`", etag:$e, payload:$p) }`,
			map[string]any{"e": fmt.Sprint("e", i), "p": map[string]any{"i": i, "t": t}}, nil)
	case "centrifugo":
		var out struct {
			Error *struct {
				Code    int
				Message string
			}
		}
		if err := b.post(ctx, "/api/publish", "", map[string]any{"channel": centrifugoChannel, "data": map[string]any{"i": i, "t": t}}, &out); err != nil {
			return err
		}
		if out.Error != nil {
			return fmt.Errorf("centrifugo publish: %d %s", out.Error.Code, out.Error.Message)
		}
		return nil
	case "gqlgen":
		return b.post(ctx, "/query", "", map[string]any{"query": `mutation($i:Int!,$t:String!){ publish(i:$i, t:$t) }`, "variables": map[string]any{"i": i, "t": strconv.FormatInt(t, 10)}}, nil)
	default:
		return b.post(ctx, "/publish", "", map[string]any{"i": i, "t": t}, nil)
	}
}

func (b *bencher) gql(ctx context.Context, tok, query string, vars map[string]any, out any) error {
	return b.gqlAt(ctx, b.c.urls[0], tok, query, vars, out)
}

func (b *bencher) gqlAt(ctx context.Context, base, tok, query string, vars map[string]any, out any) error {
	var resp struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := b.postAt(ctx, base, "/graphql", tok, map[string]any{"query": query, "variables": vars}, &resp); err != nil {
		return err
	}
	if len(resp.Errors) > 0 {
		return errors.New(resp.Errors[0].Message)
	}
	if out != nil {
		return json.Unmarshal(resp.Data, out)
	}
	return nil
}

func (b *bencher) post(ctx context.Context, path, tok string, body any, out any) error {
	return b.postAt(ctx, b.c.urls[0], path, tok, body, out)
}

func (b *bencher) postAt(ctx context.Context, base, path, tok string, body any, out any) error {
	bs, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, "POST", base+path, bytes.NewReader(bs))
	req.Header.Set("Content-Type", "application/json")
	if b.c.target == "centrifugo" {
		req.Header.Set("X-API-Key", centrifugoAPIKey)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode >= 300 {
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (b *bencher) closeAll() {
	for _, s := range b.subs {
		if s != nil && s.conn != nil {
			s.conn.Close()
		}
	}
	b.http.CloseIdleConnections()
}

// cpuSeconds sums the processes' user+system CPU time, and separately
// that of their live descendants (meshgate's plugin processes), which
// /proc/<pid>/stat does not count until they are reaped.
func cpuSeconds(pids []int) (own, children float64) {
	for _, p := range pids {
		own += cpuSeconds1(p)
		for _, c := range descendants(p) {
			children += cpuSeconds1(c)
		}
	}
	return own, children
}

// descendants lists pid's live descendants from /proc/<pid>/task/*/children.
func descendants(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
				out = append(out, descendants(c)...)
			}
		}
	}
	return out
}

// cpuSeconds1 is the process's user+system CPU time from /proc/pid/stat.
func cpuSeconds1(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

func rssBytes(pids []int) int64 { return sumStatus(pids, "VmRSS:") * 1024 }
func threads(pids []int) int64  { return sumStatus(pids, "Threads:") }

func sumStatus(pids []int, key string) int64 {
	var n int64
	for _, p := range pids {
		n += procStatus(p, key)
	}
	return n
}

func procStatus(pid int, key string) int64 {
	if pid <= 0 {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			n, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return n
		}
	}
	return 0
}

// explainLoss says, on stderr, what the lost deliveries were: which
// events were missing at how many subscribers, how many of those
// subscribers were told of a loss (a notification without an event:
// RESYNC, OVERFLOW…), and, for meshgate, what a few of those
// subscribers' queues hold after the last seq their stream carried.
func (b *bencher) explainLoss(ctx context.Context, r *report) {
	missing := map[int]int{} // event index → subscribers missing it
	var short []*sub
	for _, s := range b.subs {
		s.mu.Lock()
		k := 0
		for i := range s.events {
			if s.seen[i/64]&(1<<(i%64)) == 0 {
				missing[i]++
				k++
			}
		}
		s.mu.Unlock()
		if k > 0 {
			short = append(short, s)
			if s.announced.Load() == 0 {
				r.LostUnannounced += int64(k)
			}
		}
	}
	idx := make([]int, 0, len(missing))
	for i := range missing {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	fmt.Fprintf(os.Stderr, "loss: %d subscribers short, %d announcements received in all, %d lost at subscribers told nothing\n", len(short), r.Announced, r.LostUnannounced)
	for k, i := range idx {
		if k == 20 {
			fmt.Fprintf(os.Stderr, "loss:   … %d more events\n", len(idx)-k)
			break
		}
		fmt.Fprintf(os.Stderr, "loss:   event %d missing at %d subscribers\n", i, missing[i])
	}
	if b.c.target != "meshgate" || b.c.mode != "ws" {
		return
	}
	for _, s := range short[:min(3, len(short))] {
		var out struct {
			Notifications struct {
				LastSeq uint64
				Items   []struct {
					Seq     uint64
					Kind    string
					Etag    string
					Payload json.RawMessage
				}
			}
		}
		after := s.seq.Load()
		err := b.gqlAt(ctx, s.base, s.token, `query($q:String!,$a:Seq){ notifications(queue:$q, after:$a, limit:100) { lastSeq items { seq kind etag payload } } }`,
			map[string]any{"q": s.queue, "a": after}, &out)
		fmt.Fprintf(os.Stderr, "loss:   subscriber %d (%s, queue %s): stream's last seq %d, %d announcements; the queue after it: %+v err %v\n",
			s.idx, s.base, s.queue, after, s.announced.Load(), out.Notifications, err)
	}
}
