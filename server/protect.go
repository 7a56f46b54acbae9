package server

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"meshgate/graph"
)

// Limits protects the node from any one user. Each limit answers
// LIMIT_EXCEEDED (HTTP 429 with Retry-After) or closes a WebSocket with
// 4429, and is never silent.
type Limits struct {
	// RequestRate and RequestBurst: GraphQL requests per user per second
	// (HTTP requests, SSE requests, WebSocket subscribe messages).
	// Defaults 50/s and 100.
	RequestRate  float64 `yaml:"request_rate"`
	RequestBurst int     `yaml:"request_burst"`
	// SubscribeRate and SubscribeBurst: subscribe mutations per user per
	// second. Defaults 20/s and 200 (a device subscribing its resources at
	// start fits in the burst).
	SubscribeRate  float64 `yaml:"subscribe_rate"`
	SubscribeBurst int     `yaml:"subscribe_burst"`
	// MaxConnsPerUser: open WebSocket and SSE streams per user. Default 100.
	MaxConnsPerUser int `yaml:"max_streams"`
	// MaxConns: open WebSocket and SSE streams on this node. Default 50 000.
	// In the config file it is limits.max_streams, beside per_user.
	MaxConns int `yaml:"-"`
}

// Validate reports every limit that is negative or not a number, all at
// once, each named by its key under `limits:` in the config file. Zero
// means the default, so only a negative value is wrong: a negative rate
// would refuse every request, a negative count every stream.
func (l Limits) Validate() error {
	var errs []error
	for _, f := range []struct {
		key string
		v   float64
	}{
		{"per_user.request_rate", l.RequestRate}, {"per_user.request_burst", float64(l.RequestBurst)},
		{"per_user.subscribe_rate", l.SubscribeRate}, {"per_user.subscribe_burst", float64(l.SubscribeBurst)},
		{"per_user.max_streams", float64(l.MaxConnsPerUser)}, {"max_streams", float64(l.MaxConns)},
	} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Errorf("%s: must be positive (0: the default), got %v", f.key, f.v))
		}
	}
	return errors.Join(errs...)
}

// DefaultLimits returns the defaults spelled out.
func DefaultLimits() Limits {
	var l Limits
	l.defaults()
	return l
}

func (l *Limits) defaults() {
	if l.RequestRate == 0 {
		l.RequestRate = 50
	}
	if l.RequestBurst == 0 {
		l.RequestBurst = 100
	}
	if l.SubscribeRate == 0 {
		l.SubscribeRate = 20
	}
	if l.SubscribeBurst == 0 {
		l.SubscribeBurst = 200
	}
	if l.MaxConnsPerUser == 0 {
		l.MaxConnsPerUser = 100
	}
	if l.MaxConns == 0 {
		l.MaxConns = 50000
	}
}

// maxTracked bounds the per-user state; past it, idle users are swept at once.
const maxTracked = 1 << 20

// guard keeps per-user token buckets and connection counts.
type guard struct {
	cfg Limits
	now func() time.Time

	mu    sync.Mutex
	users map[string]*userState
	conns int
}

type userState struct {
	requests, subscribes *rate.Limiter
	conns                int
	seen                 time.Time
}

func newGuard(cfg Limits, now func() time.Time) *guard {
	cfg.defaults()
	return &guard{cfg: cfg, now: now, users: make(map[string]*userState)}
}

func (g *guard) user(u string) *userState {
	st := g.users[u]
	if st == nil {
		if len(g.users) >= maxTracked {
			g.sweepLocked(0)
		}
		st = &userState{
			requests:   rate.NewLimiter(rate.Limit(g.cfg.RequestRate), g.cfg.RequestBurst),
			subscribes: rate.NewLimiter(rate.Limit(g.cfg.SubscribeRate), g.cfg.SubscribeBurst),
		}
		g.users[u] = st
	}
	st.seen = g.now()
	return st
}

// allowRequest takes one request token of user u.
func (g *guard) allowRequest(u string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.user(u).requests.AllowN(g.now(), 1)
}

// allowSubscribe takes one subscribe token of user u.
func (g *guard) allowSubscribe(u string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.user(u).subscribes.AllowN(g.now(), 1)
}

// openConn counts a stream for user u, or refuses it.
func (g *guard) openConn(u string) (ok bool, why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns >= g.cfg.MaxConns {
		return false, "this node holds its maximum of " + strconv.Itoa(g.cfg.MaxConns) + " streams"
	}
	st := g.user(u)
	if st.conns >= g.cfg.MaxConnsPerUser {
		return false, "a user may hold at most " + strconv.Itoa(g.cfg.MaxConnsPerUser) + " streams"
	}
	st.conns++
	g.conns++
	return true, ""
}

func (g *guard) closeConn(u string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if st := g.users[u]; st != nil && st.conns > 0 {
		st.conns--
		g.conns--
	}
}

// nodeFull reports whether the node is at its stream limit (checked before
// a WebSocket upgrade, when the user is not known yet).
func (g *guard) nodeFull() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns >= g.cfg.MaxConns
}

// sweep forgets users idle for longer than idle whose buckets are full and
// who hold no stream. The wheel calls it now and then.
func (g *guard) sweep(idle time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweepLocked(idle)
}

func (g *guard) sweepLocked(idle time.Duration) {
	now := g.now()
	for u, st := range g.users {
		if st.conns == 0 && now.Sub(st.seen) >= idle {
			delete(g.users, u)
		}
	}
}

func tooMany(w http.ResponseWriter, media, msg string) {
	w.Header().Set("Retry-After", "1")
	writeRequestError(w, media, &requestError{http.StatusTooManyRequests, graph.CodeLimitExceeded, msg})
}
