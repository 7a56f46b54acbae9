package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"

	"meshgate/graph"
	"meshgate/internal/faults"
	"meshgate/internal/netpoll"
	"meshgate/shard"
	"meshgate/shard/cluster"
)

// Server serves meshgate's public API. Create it with New, serve with
// Serve, stop with Shutdown.
type Server struct {
	cfg   Config
	log   *slog.Logger
	auth  *Authenticator
	store *shard.Store
	node  *cluster.Node
	exec  *executor.Executor
	mux   *http.ServeMux

	// resolver, present and recov serve the `publish` and `notifications`
	// fast paths (serveHTTP), which answer as exec would; slowPublish and
	// slowPoll turn them off (tests compare the two).
	resolver    *graph.Resolver
	present     graphql.ErrorPresenterFunc
	recov       graphql.RecoverFunc
	slowPublish bool
	slowPoll    bool
	slowSetup   bool          // turns off createQueue's and subscribe's fast path (answerJSON, wsConn.subscribe)
	plans       *publishPlans // documents answerPlanned skips gqlgen for (off with slowPublish)

	handlers *handlers // run WebSocket messages (wshandlers.go)

	// base is the parent context of every stream; Shutdown cancels it,
	// since http.Server.Shutdown does not wait for hijacked connections.
	base       context.Context
	cancelBase context.CancelFunc

	wheel *wheel
	// poller wakes the readers of idle WebSockets (wsConn.park); nil
	// where there is none (not Linux), and then every WebSocket keeps a
	// goroutine blocked in Read.
	poller  *netpoll.Poller
	writers *writers
	metrics *metrics
	status  statusHistory
	guard   *guard
	cors    *cors
	faults  *faults.Injector
	http    *http.Server
	once    sync.Once
}

// New builds a server over a cluster node and the resolver.
func New(cfg Config, auth *Authenticator, node *cluster.Node, resolver *graph.Resolver) (*Server, error) {
	store := node.Store()
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "server"), auth: auth, store: store, node: node}
	if resolver.Logger == nil {
		resolver.Logger = cfg.Logger.With("component", "graph")
	}
	// No Complexity functions: the publish plans rely on it (graph.PublishPlan).
	es := graph.NewExecutableSchema(graph.Config{Resolvers: resolver})
	s.exec = executor.New(es)
	s.exec.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	s.exec.SetParserTokenLimit(cfg.MaxTokens)
	s.resolver, s.present, s.recov = resolver, graph.NewErrorPresenter(), graph.Recover(s.log)
	s.plans = newPublishPlans()
	s.exec.SetErrorPresenter(s.present)
	s.exec.SetRecoverFunc(s.recov)
	s.exec.Use(extension.Introspection{})
	s.exec.Use(&limits{maxDepth: cfg.MaxDepth, maxComplexity: cfg.MaxComplexity, maxExpanded: cfg.MaxTokens})

	s.guard = newGuard(cfg.Limits, cfg.Now)
	s.cors = newCORS(cfg.CORS)
	if s.cors != nil && s.cors.any {
		s.log.Warn("cors.allowed_origins has \"*\": a page on any origin may call the gateway with a token it holds; list the origins instead")
	}
	s.faults = faults.New(cfg.Faults, cfg.FaultSeed)
	if s.faults != nil {
		s.log.Warn("fault injection is on", "delay_probability", cfg.Faults.DelayProbability, "delay", cfg.Faults.Delay.String(), "error_probability", cfg.Faults.ErrorProbability)
	}
	if resolver.AllowSubscribe == nil {
		resolver.AllowSubscribe = func(p shard.Principal) bool { return s.guard.allowSubscribe(p.User) }
	}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.writers = newWriters(s.base, max(2, 2*runtime.GOMAXPROCS(0)), !cfg.WS.NoCoalesce)
	s.handlers = newHandlers(s.base, maxHandlers)
	s.status.started = cfg.Now()
	s.wheel = newWheel(s.base, time.Second, cfg.Now, func() { s.guard.sweep(10 * time.Minute) })
	if s.poller, err = netpoll.New(); err != nil {
		s.log.Info("no poller: each WebSocket keeps a reader goroutine", "err", err)
		s.poller = nil
	}

	go s.sampleLoop(s.base)
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/graphql", s.serveGraphQL)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	s.metrics = newMetrics(s)
	s.mux.Handle("GET /metrics", s.metrics.handler(s, true))
	s.mux.HandleFunc("GET /status", serveStatusPage)
	s.mux.Handle("GET /status.json", s.requireAdmin("the status needs the admin scope", http.HandlerFunc(s.serveStatusJSON)))
	s.mux.Handle("/", graphiqlHandler())
	return s, nil
}

// Handler returns the root HTTP handler.
func (s *Server) Handler() http.Handler { return withRequestID(s.cors.wrap(s.mux)) }

// Handle serves pattern with h beside the gateway's own routes (cmd mounts
// optional pages such as /examples/). Call it before Serve.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.base.Err() != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("draining\n"))
		return
	}
	if s.cfg.Ready != nil && !s.cfg.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("plugins starting\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// serveGraphQL picks the transport: WebSocket upgrade, SSE, or plain HTTP.
func (s *Server) serveGraphQL(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // a recovered panic value, not a returned error: net/http panics with exactly this value
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "handler panic", "panic", v)
		}
	}()
	if err := s.faults.Before(r.Context()); err != nil {
		// Refused before anything ran: a client may retry safely.
		w.Header().Set("Retry-After", "1")
		writeRequestError(w, mediaJSON, &requestError{http.StatusServiceUnavailable, graph.CodeUnavailable, "unavailable (injected fault): retry"})
		return
	}
	if isWebSocket(r) {
		s.serveWS(w, r)
		return
	}
	accept := r.Header.Get("Accept")
	media, _ := negotiate(accept, allOffers...)
	var f framing
	switch media {
	case mediaEventStream:
		f = sseFraming{}
	case mediaMultipart:
		f = multipartFraming{}
	default:
		s.serveHTTP(w, r)
		return
	}
	jsonMedia, _ := negotiate(accept, jsonOffers...)
	s.serveStream(w, r, f, jsonMedia)
}

// maxHTTP2Streams caps concurrent streams on one HTTP/2 connection.
const maxHTTP2Streams = 100

// Serve accepts connections on l: TLS when tlsCfg is set, plain HTTP otherwise.
func (s *Server) Serve(l net.Listener, tlsCfg *tls.Config) error {
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// One HTTP/2 connection may not hold more handlers than a user
		// may hold streams (Limits.MaxConnsPerUser's default).
		HTTP2:       &http.HTTP2Config{MaxConcurrentStreams: maxHTTP2Streams},
		BaseContext: func(net.Listener) context.Context { return s.base },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if tlsCfg != nil {
		l = tls.NewListener(l, tlsCfg)
	}
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, ends every stream (WebSockets close with 1001
// "going away", so clients reconnect elsewhere), and waits for handlers
// until ctx ends. Safe to call twice.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		s.cancelBase()
		s.wheel.goingAway()
		if s.http != nil {
			err = s.http.Shutdown(ctx)
		}
		s.wheel.wait()
		if werr := s.wheel.drain(ctx); err == nil {
			err = werr
		}
		if s.poller != nil {
			// Parked readers still here (drain timed out) start, and
			// end with their sockets.
			_ = s.poller.Close()
		}
	})
	return err
}

// operationContext runs gqlgen's parse and validation for params as p.
func (s *Server) operationContext(ctx context.Context, p shard.Principal, params *graphql.RawParams) (context.Context, *graphql.OperationContext, []byte) {
	ctx = graph.WithPrincipal(ctx, p)
	ctx = graphql.StartOperationTrace(ctx)
	opCtx, errs := s.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := s.exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs)
		return ctx, nil, marshalErrors(resp.Errors)
	}
	return ctx, opCtx, nil
}
