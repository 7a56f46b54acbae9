package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind says what an Event reports.
type Kind string

// Event kinds: the gateway's notification kinds, and ChangedWhileAway,
// which the client makes itself.
const (
	Changed  Kind = "CHANGED"
	Resync   Kind = "RESYNC"
	Revoked  Kind = "REVOKED"
	Overflow Kind = "OVERFLOW"
	Invite   Kind = "INVITE"
	// ChangedWhileAway: the client subscribed again (its queue was lost),
	// or Watch was given a knownEtag, and the resource's etag is not the
	// one it knew: the resource changed while it was not listening. After
	// an OVERFLOW, a RESYNC says it instead, queued after the
	// notifications still there.
	ChangedWhileAway Kind = "CHANGED_WHILE_AWAY"
	// EtagUnknown: nobody knows the resource's current version, so it
	// may have changed and the client cannot tell: re-read the resource
	// from its source. It comes from a RESYNC the gateway flags
	// etagUnknown (a subscriber list made again after its holder died,
	// with no surviving queue or publisher that knew the version), and
	// from a subscribe that answered "" for a resource the client knew an
	// etag of (its publisher forgot, as the built-in `user:` one does
	// when it restarts). Etag is "" then; Watch.Etag keeps the last etag
	// known, so a later change is still reported against it.
	EtagUnknown Kind = "ETAG_UNKNOWN"
)

// Event is one thing that happened to a watched resource (or, for INVITE
// and OVERFLOW, to the client).
type Event struct {
	Kind     Kind
	Resource string
	Etag     string
	// Seq is the notification's seq in the client's queue (0 for events
	// the client made itself).
	Seq     uint64
	Time    time.Time
	Payload json.RawMessage
	// From is the inviting device, for INVITE: "user/device".
	From string
}

// State is the client's connection state.
type State string

// States.
const (
	Connecting   State = "connecting"
	Streaming    State = "streaming" // over WebSocket
	Polling      State = "polling"   // over HTTP long-poll
	Reconnecting State = "reconnecting"
	Closed       State = "closed"
)

// Options tune a Client. The zero value works.
type Options struct {
	// HTTPClient makes every request and carries TLS settings. Default
	// http.DefaultClient's transport with a TLS session cache, so that a
	// device that reconnects resumes its TLS session (skipping the
	// certificate and its signature) on any node that shares the
	// cluster's ticket keys. A client of your own resumes if its
	// tls.Config has a ClientSessionCache.
	HTTPClient *http.Client
	// Token is asked for a fresh token before the current one expires
	// (its `exp` claim, 1 minute ahead) and when the gateway refuses it.
	// Nil: the token given to Dial is used until it expires.
	Token func(ctx context.Context) (string, error)
	// URLs are other nodes of the same gateway, tried in turn after the
	// first one fails.
	URLs []string
	// Transport: "auto" (WebSocket, falling back to long-poll), "ws" or
	// "poll". Default auto.
	Transport string
	// QueueTTL is the queue's lease. Default 5 minutes.
	QueueTTL time.Duration
	// MinBackoff and MaxBackoff bound reconnect delays (with full jitter).
	// Defaults 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// Buffer is each Watch's event channel capacity. Default 256. A full
	// channel holds the client back (the gateway keeps buffering).
	Buffer int
	// Logger: default discard.
	Logger *slog.Logger
}

// Stats are the client's counters.
type Stats struct {
	Notifications, Duplicates, Reconnects, QueuesCreated, Resubscribes, TokenRefreshes uint64
}

// Client is one device's connection to meshgate.
type Client struct {
	opts Options
	urls []string
	log  *slog.Logger

	mu      sync.Mutex
	token   string
	queue   string
	lastSeq uint64
	watches map[string]*Watch
	// fences holds, for a resource whose watch was closed, the queue's
	// last seq once it was unsubscribed: its notifications up to there,
	// still unread, were queued for the closed watch (dispatch).
	fences map[string]uint64
	// turns orders what subscribes or unsubscribes each resource
	// (lockResource).
	turns   map[string]*turn
	state   State
	states  chan State
	invites chan Event
	urlIdx  int
	closed  bool
	kick    chan struct{} // something changed: re-subscribe, reconnect

	stats struct {
		notifications, duplicates, reconnects, queues, resubscribes, refreshes atomic.Uint64
	}
	cancel context.CancelFunc
	done   chan struct{}
}

// Watch is one watched resource.
type Watch struct {
	c        *Client
	resource string
	proof    string
	events   chan Event
	mu       sync.Mutex
	etag     string
	closed   bool
}

// Events delivers the resource's events in order. It is closed when the
// Watch or the Client closes, or after REVOKED.
func (w *Watch) Events() <-chan Event { return w.events }

// Resource is the watched resource.
func (w *Watch) Resource() string { return w.resource }

// Etag is the last etag the client knows for the resource.
func (w *Watch) Etag() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.etag
}

// Close stops watching the resource.
func (w *Watch) Close() {
	c := w.c
	defer c.lockResource(w.resource)()
	c.mu.Lock()
	// Invariant: only the client's current watch of a resource speaks for
	// it at the gateway. One REVOKED ended, or closed already, holds no
	// subscription of its own: the queue's, if any, is a newer watch's.
	current := c.watches[w.resource] == w
	if current {
		delete(c.watches, w.resource)
	}
	q := c.queue
	c.mu.Unlock()
	w.shut()
	if current && q != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A mutation's fields run in turn: lastSeq is read once the
		// subscription is gone, so every notification it queued has a
		// seq not above it.
		var out struct{ RenewQueue struct{ LastSeq uint64 } }
		if c.gql(ctx, `mutation($q:String!,$r:String!){ unsubscribe(queue:$q, resource:$r) renewQueue(name:$q) { lastSeq } }`, map[string]any{"q": q, "r": w.resource}, &out) == nil {
			c.mu.Lock()
			if c.queue == q && out.RenewQueue.LastSeq > c.lastSeq {
				c.fences[w.resource] = out.RenewQueue.LastSeq
			}
			c.mu.Unlock()
		}
	}
}

func (w *Watch) shut() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.events)
	}
}

// Dial connects to the gateway at url (its /graphql endpoint) as the
// device token names, makes the client's queue, and starts streaming.
func Dial(ctx context.Context, url, token string, opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.HTTPClient == nil {
		o.HTTPClient = defaultHTTPClient()
	}
	if o.Transport == "" {
		o.Transport = "auto"
	}
	if o.QueueTTL == 0 {
		o.QueueTTL = 5 * time.Minute
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.Buffer == 0 {
		o.Buffer = 256
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		opts: o, urls: append([]string{url}, o.URLs...), log: o.Logger.With("component", "meshgate-client"),
		token: token, watches: map[string]*Watch{}, fences: map[string]uint64{}, turns: map[string]*turn{}, state: Connecting,
		states: make(chan State, 16), invites: make(chan Event, o.Buffer), kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	if err := c.makeQueue(ctx); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(rctx)
	return c, nil
}

// Queue is the name of the client's current queue.
func (c *Client) Queue() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queue
}

// States reports every change of connection state; stale states are
// dropped if nobody reads.
func (c *Client) States() <-chan State { return c.states }

// State is the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Invites delivers INVITE and OVERFLOW events.
func (c *Client) Invites() <-chan Event { return c.invites }

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{Notifications: c.stats.notifications.Load(), Duplicates: c.stats.duplicates.Load(), Reconnects: c.stats.reconnects.Load(),
		QueuesCreated: c.stats.queues.Load(), Resubscribes: c.stats.resubscribes.Load(), TokenRefreshes: c.stats.refreshes.Load()}
}

func (c *Client) setState(s State) {
	c.mu.Lock()
	changed := c.state != s
	c.state = s
	c.mu.Unlock()
	if changed {
		select {
		case c.states <- s:
		default:
		}
	}
}

// Watch subscribes to resource (proof goes to its publisher) and returns
// its events. With knownEtag, a CHANGED_WHILE_AWAY event comes first if
// the resource's etag is no longer that one.
func (c *Client) Watch(ctx context.Context, resource, proof, knownEtag string) (*Watch, error) {
	w := &Watch{c: c, resource: resource, proof: proof, events: make(chan Event, c.opts.Buffer), etag: knownEtag}
	defer c.lockResource(resource)()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errors.New("client closed")
	}
	if old := c.watches[resource]; old != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("already watching %s", resource)
	}
	c.watches[resource] = w
	q := c.queue
	c.mu.Unlock()
	if err := c.subscribe(ctx, q, w); err != nil {
		c.mu.Lock()
		delete(c.watches, resource)
		c.mu.Unlock()
		return nil, err
	}
	return w, nil
}

// turn is one resource's lock, held by what subscribes or unsubscribes
// it, and how many hold or wait for it.
type turn struct {
	mu    sync.Mutex
	users int
}

// lockResource waits for resource's turn and returns its unlock.
// Invariant: a resource's Watch and Close, and the client's own
// subscribes of it again (a new queue, an OVERFLOW), run one at a time,
// each from its look at c.watches (or change of it) to the gateway's
// answer; so the gateway gets them in the order the map saw them, and
// the last one to change the map is the one that holds. Nothing holding
// a turn waits on the app (a full Events channel), nor on another turn.
func (c *Client) lockResource(resource string) (unlock func()) {
	c.mu.Lock()
	t := c.turns[resource]
	if t == nil {
		t = &turn{}
		c.turns[resource] = t
	}
	t.users++
	c.mu.Unlock()
	t.mu.Lock()
	return func() {
		t.mu.Unlock()
		c.mu.Lock()
		if t.users--; t.users == 0 {
			delete(c.turns, resource)
		}
		c.mu.Unlock()
	}
}

// execFunc runs one GraphQL operation and decodes its data into out: over
// HTTP (Client.gql) or on the stream's own WebSocket.
type execFunc func(ctx context.Context, query string, vars map[string]any, out any) error

// subscribe subscribes q to w's resource and reports a changed etag.
func (c *Client) subscribe(ctx context.Context, q string, w *Watch) error {
	return c.subscribeWith(ctx, c.gql, q, w)
}

func (c *Client) subscribeWith(ctx context.Context, gql execFunc, q string, w *Watch) error {
	a, err := c.ask(ctx, gql, q, w, "")
	if err != nil {
		return err
	}
	w.take(a)
	return nil
}

// take takes a subscribe's answer and reports a changed etag. It may
// block on a full Events channel: hold no turn for it, unless w is new
// (Watch: one event into an empty channel).
func (w *Watch) take(a answer) {
	w.mu.Lock()
	known := w.etag
	// "" means "never published": for a resource the client knew an etag
	// of, it is a publisher that forgot, not a change to tell as one.
	unknown := a.EtagUnknown || known != "" && a.Etag == ""
	if !unknown {
		w.etag = a.Etag
	}
	w.mu.Unlock()
	if unknown {
		w.send(Event{Kind: EtagUnknown, Resource: w.resource, Time: time.Now()})
		return
	}
	if known != "" && known != a.Etag {
		w.send(Event{Kind: ChangedWhileAway, Resource: w.resource, Etag: a.Etag, Time: time.Now()})
	}
}

// answer is what subscribe answers: the resource's current etag.
type answer struct {
	Etag        string
	EtagUnknown bool
}

// ask subscribes q to w's resource, telling the gateway knownEtag ("":
// none), and returns the answer without taking it.
func (c *Client) ask(ctx context.Context, gql execFunc, q string, w *Watch, knownEtag string) (answer, error) {
	var out struct{ Subscribe answer }
	err := gql(ctx, `mutation($q:String!,$r:String!,$p:String,$k:String){ subscribe(queue:$q, resource:$r, proof:$p, knownEtag:$k) { etag etagUnknown } }`,
		map[string]any{"q": q, "r": w.resource, "p": w.proof, "k": knownEtag}, &out)
	return out.Subscribe, err
}

// resubscribe subscribes q to w's resource again after an OVERFLOW,
// without taking the answer. The notifications still queued after the
// OVERFLOW are newer than those dropped but may be older than the
// answer: a watch that took it would go back when it read them. So it
// names the last etag it took (knownEtag); when the answer differs, the
// gateway appends a RESYNC carrying it after everything queued (under the
// queue's lock, shard.Store.Subscribe), and the watch reaches it by
// reading on. When the answer is that etag, the watch is current.
func (c *Client) resubscribe(ctx context.Context, q string, w *Watch) error {
	known := w.Etag()
	if known == "" {
		// A watch that knows no etag has none to name, and the gateway
		// appends a RESYNC only for a knownEtag. A resource never
		// published had nothing dropped; for one that was, name an
		// etag no publisher made, which the answer differs from.
		a, err := c.ask(ctx, c.gql, q, w, "")
		if err != nil || a.Etag == "" && !a.EtagUnknown {
			return err
		}
		known = noEtag()
	}
	_, err := c.ask(ctx, c.gql, q, w, known)
	return err
}

// noEtag is an etag no publisher made: 128 random bits.
func noEtag() string {
	return fmt.Sprintf("meshgate-client-none-%016x%016x", rand.Uint64(), rand.Uint64())
}

func (w *Watch) send(ev Event) {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return
	}
	defer func() { _ = recover() }() // closed concurrently by Close: the event is not wanted
	w.events <- ev
}

// makeQueue creates a new queue and subscribes every watch to it again.
func (c *Client) makeQueue(ctx context.Context) error { return c.makeQueueWith(ctx, c.gql) }

func (c *Client) makeQueueWith(ctx context.Context, gql execFunc) error {
	var out struct{ CreateQueue struct{ Name string } }
	if err := gql(ctx, `mutation($t:Int){ createQueue(ttlSeconds:$t) { name } }`, map[string]any{"t": int(c.opts.QueueTTL / time.Second)}, &out); err != nil {
		return err
	}
	c.stats.queues.Add(1)
	c.mu.Lock()
	c.queue, c.lastSeq = out.CreateQueue.Name, 0
	clear(c.fences) // seqs of the old queue
	ws := make([]*Watch, 0, len(c.watches))
	for _, w := range c.watches {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		// In w's turn, so that a Close of it made meanwhile unsubscribes
		// after this subscribe, not before (lockResource). The answer is
		// taken after: take may wait for the app, which may be closing w.
		unlock := c.lockResource(w.resource)
		if !c.watching(out.CreateQueue.Name, w) {
			unlock()
			continue
		}
		a, err := c.ask(ctx, gql, out.CreateQueue.Name, w, "")
		unlock()
		if err != nil {
			return err
		}
		w.take(a)
		c.stats.resubscribes.Add(1)
	}
	return nil
}

// resubscribeAll subscribes every watch again on the same queue after an
// OVERFLOW (some notifications are gone): each watch learns its
// resource's current etag from a RESYNC at the end of the queue.
func (c *Client) resubscribeAll(ctx context.Context) {
	c.mu.Lock()
	q := c.queue
	ws := make([]*Watch, 0, len(c.watches))
	for _, w := range c.watches {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		// Invariant: after an OVERFLOW every watch is subscribed again
		// naming its etag, or stops watching: the RESYNC that subscribe
		// queues is all that brings back a resource whose changes were
		// dropped. So a failure of the node or network is retried (gql
		// moves on to the next node), until it works or the watch, its
		// queue or the client is gone. Another error (the queue is gone:
		// the stream learns it and subscribes everything again) is not.
		// Each try is made in w's turn, so that a Close of it made meanwhile
		// unsubscribes after it, not before (lockResource).
		for attempt := 0; ; attempt++ {
			unlock := c.lockResource(w.resource)
			if !c.watching(q, w) {
				unlock()
				break
			}
			err := c.resubscribe(ctx, q, w)
			unlock()
			if err == nil {
				c.stats.resubscribes.Add(1)
				break
			}
			var e *Error
			if errors.As(err, &e) && e.Code != "UNAVAILABLE" || ctx.Err() != nil {
				break
			}
			c.log.Debug("subscribing again after an OVERFLOW failed", "resource", w.resource, "err", err)
			sleep(ctx, c.backoff(attempt))
		}
	}
}

// watching reports whether w is still watched on queue q.
func (c *Client) watching(q string, w *Watch) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed && c.queue == q && c.watches[w.resource] == w
}

// Close stops the client and deletes its queue.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	q := c.queue
	ws := c.watches
	c.watches = map[string]*Watch{}
	c.mu.Unlock()
	c.cancel()
	<-c.done
	for _, w := range ws {
		w.shut()
	}
	c.setState(Closed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.gql(ctx, `mutation($q:String!){ deleteQueue(name:$q) }`, map[string]any{"q": q}, nil)
}

// dispatch hands one notification to its watch, once.
func (c *Client) dispatch(ctx context.Context, n notification) {
	c.mu.Lock()
	if n.Seq <= c.lastSeq && n.Seq != 0 {
		c.mu.Unlock()
		c.stats.duplicates.Add(1)
		return
	}
	c.lastSeq = n.Seq
	// Invariant: a watch sees no notification queued before its
	// subscribe answered. One at or below its resource's fence was
	// queued for an earlier watch, before that one was unsubscribed: it
	// may be older than what the new watch's subscribe answered.
	stale := false
	if f, ok := c.fences[n.Resource]; ok && n.Resource != "" {
		if stale = n.Seq <= f; !stale {
			delete(c.fences, n.Resource)
		}
	}
	w := c.watches[n.Resource]
	c.mu.Unlock()
	c.stats.notifications.Add(1)
	if stale {
		return
	}
	ev := Event{Kind: Kind(n.Kind), Resource: n.Resource, Etag: n.Etag, Seq: n.Seq, Time: n.PublishedAt, Payload: n.Payload}
	if n.EtagUnknown {
		ev.Kind = EtagUnknown // a RESYNC whose "" is not "never published"
	}
	if n.From != nil {
		ev.From = n.From.User + "/" + n.From.Device
	}
	switch ev.Kind {
	case Invite:
		select {
		case c.invites <- ev:
		case <-ctx.Done():
		}
		return
	case Overflow:
		select {
		case c.invites <- ev:
		default:
		}
		c.resubscribeAll(ctx) // some notifications are gone: find out what changed
		return
	}
	if w == nil {
		return
	}
	if ev.Kind == Changed || ev.Kind == Resync {
		w.mu.Lock()
		w.etag = ev.Etag
		w.mu.Unlock()
	}
	w.send(ev)
	if ev.Kind == Revoked {
		c.mu.Lock()
		if c.watches[w.resource] == w {
			delete(c.watches, w.resource)
		}
		c.mu.Unlock()
		w.shut()
	}
}

type notification struct {
	Seq         uint64
	Kind        string
	Resource    string
	Etag        string
	EtagUnknown bool
	PublishedAt time.Time
	Payload     json.RawMessage
	From        *struct{ User, Device string }
}

const notificationFields = `seq kind resource etag etagUnknown publishedAt payload from { user device }`

// gqlError is a GraphQL error with its code.
type gqlError struct {
	Message    string
	Extensions struct{ Code string }
}

// Error is a GraphQL error from the gateway, with its extensions.code.
type Error struct {
	Code, Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// IsCode reports whether err is a gateway error with that code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

func (c *Client) url() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.urls[c.urlIdx%len(c.urls)]
}

// nextURL moves to the next node after a failure.
func (c *Client) nextURL() {
	c.mu.Lock()
	c.urlIdx++
	c.mu.Unlock()
}

func (c *Client) currentToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// gql posts one operation, retrying on the next node when one is down.
func (c *Client) gql(ctx context.Context, query string, vars map[string]any, out any) error {
	var err error
	for attempt := range len(c.urls) + 2 {
		err = c.gqlOnce(ctx, query, vars, out)
		var e *Error
		switch {
		case err == nil:
			return nil
		case errors.As(err, &e) && e.Code == "UNAUTHENTICATED" && c.opts.Token != nil && attempt == 0:
			if rerr := c.refreshToken(ctx); rerr != nil {
				return err
			}
		case errors.As(err, &e) && e.Code != "UNAVAILABLE":
			return err
		default: // transport failure or UNAVAILABLE: another node, after a pause
			c.nextURL()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(c.backoff(attempt)):
			}
		}
	}
	return err
}

func (c *Client) gqlOnce(ctx context.Context, query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, "POST", c.url(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.currentToken())
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Data   json.RawMessage
		Errors []gqlError
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("meshgate: %s: %w", resp.Status, err)
	}
	if len(r.Errors) > 0 {
		return &Error{Code: r.Errors[0].Extensions.Code, Message: r.Errors[0].Message}
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}

// backoff is the delay before attempt, with full jitter.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.opts.MinBackoff << min(attempt, 16)
	d = min(d, c.opts.MaxBackoff)
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// refreshToken asks Options.Token for a new token.
func (c *Client) refreshToken(ctx context.Context) error {
	if c.opts.Token == nil {
		return errors.New("no token callback")
	}
	t, err := c.opts.Token(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.token = t
	c.mu.Unlock()
	c.stats.refreshes.Add(1)
	return nil
}

// expiry reads a JWT's exp claim (unverified: the gateway verifies).
func expiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct{ Exp int64 }
	if json.Unmarshal(b, &claims) != nil || claims.Exp == 0 {
		return time.Time{}, false
	}
	return time.Unix(claims.Exp, 0), true
}

// defaultHTTPClient is Options.HTTPClient's default: http.DefaultTransport
// with a TLS session cache.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{ClientSessionCache: tls.NewLRUClientSessionCache(0)} //nolint:gosec // Go's default minimum version
	return &http.Client{Transport: t}
}
