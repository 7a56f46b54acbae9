package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"meshgate/examples/web"
	"meshgate/graph"
	"meshgate/internal/gctune"
	"meshgate/plugins/host"
	"meshgate/server"
	"meshgate/shard"
	"meshgate/shard/cluster"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file (see README: Configuration)")
	faultSpec := fs.String("faults", "", "inject faults, e.g. http.error=0.1,http.delay=50ms,http.delay_p=0.2,plugins.error=0.05 (off by default)")
	debugListen := fs.String("debug-listen", "", "serve net/http/pprof on this address (loopback only, e.g. 127.0.0.1:6060); off by default")
	examples := fs.Bool("examples", false, "serve the example web page (examples/web) under /examples/")
	given := settingFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if err := flagsFromEnv(fs, os.LookupEnv); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	given.apply(&cfg) // flags and environment win over the file
	if err := parseFaults(*faultSpec, &cfg.Faults); err != nil {
		return err
	}
	if err := cfg.check(*configPath); err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := newLogger(stderr, cfg.LogFormat, level)

	if h := cfg.Memory.GCHeadroomMiB; h >= 0 {
		tctx, stopTune := context.WithCancel(context.Background())
		defer stopTune()
		go gctune.Run(tctx, gctune.Config{Headroom: uint64(h) << 20}, log.With("component", "gctune"))
	}

	keys := cfg.Auth.Keys
	if !cfg.Auth.DisableDevKey {
		k, created, err := server.EnsureDevKey(cfg.DataDir)
		if err != nil {
			return err
		}
		if created {
			log.Info("created development token key", "path", k.SecretFile)
		}
		keys = append(keys, k)
	}
	auth, err := server.NewAuthenticator(keys, nil)
	if err != nil {
		return err
	}
	auth.SetMaxLifetime(cfg.Auth.MaxTokenLifetime)

	plugins := cfg.Plugins
	if plugins == nil {
		plugins = host.DefaultPlugins()
	}
	var node *cluster.Node // set before the plugins start
	owns := func(resource string) bool { return node.Owns(resource) }
	pubs, err := host.New(host.Config{Plugins: plugins, DataDir: cfg.DataDir, Logger: log, Faults: cfg.Faults.Plugins, FaultSeed: cfg.Faults.Seed, Owns: owns}, nil)
	if err != nil {
		return err
	}
	scfg := cfg.Store
	scfg.Logger = log
	scfg.Observer = pubs.Observer()
	store, err := shard.New(scfg)
	if err != nil {
		return err
	}
	defer store.Close()
	node, err = cfg.Cluster.node(store, cfg.DataDir, pubs.Current, cfg.Faults.Cluster, cfg.Faults.Seed, log)
	if err != nil {
		return err
	}
	// Every address the node advertises is bound before it joins: a node
	// that joined and then failed to bind its HTTP port died at once, a
	// crash right after a join (its keys handed out, then taken back),
	// and started again on another port under the same name it found its
	// old address still held for it by the others ("Conflicting address").
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer l.Close() // Serve closes it too; this covers the returns before it
	if err := node.Start(ctx); err != nil {
		return err
	}
	defer node.Close()
	pubs.SetSink(node)
	routed := node.Publishers(pubs) // authorize and publish at each resource's owner
	startCtx, cancelStart := context.WithTimeout(ctx, 30*time.Second)
	pubs.Start(startCtx)
	cancelStart()
	// Now the node may own keys: its publishers are up (or gave up for now).
	node.SetReady()
	defer pubs.Close() // after the server has stopped: plugins go last
	if !pubs.Ready() {
		log.Warn("not every plugin is up yet; their schemes answer UNAVAILABLE until they are")
	}
	srvCfg := cfg.Server.serverConfig(log)
	srvCfg.Ready = func() bool { return pubs.Ready() && node.Joined() }
	srvCfg.Faults, srvCfg.FaultSeed = cfg.Faults.HTTP, cfg.Faults.Seed
	srvCfg.CORS = cfg.CORS
	srvCfg.Plugins = func() []server.PluginStatus {
		var out []server.PluginStatus
		for _, p := range pubs.Health() {
			out = append(out, server.PluginStatus{Name: p.Name, Up: p.Up, Restarts: p.Restarts})
		}
		return out
	}
	srv, err := server.New(srvCfg, auth, node, &graph.Resolver{Backend: node, Publishers: routed, MaxPayloadBytes: cfg.Server.MaxPayloadBytes})
	if err != nil {
		return err
	}

	if *examples {
		srv.Handle("GET /examples/", http.StripPrefix("/examples/", http.FileServerFS(web.Files)))
	}

	scheme := "https"
	if cfg.InsecureHTTP {
		scheme = "http"
		log.Warn("SERVING PLAIN HTTP: tokens and notifications cross the network unencrypted; use --insecure-http only behind a TLS-terminating proxy")
	}
	tlsCfg, err := cfg.tls(log)
	if err != nil {
		return err
	}
	log.Info("meshgate serving", "url", fmt.Sprintf("%s://%s/graphql", scheme, displayAddr(l.Addr())), "graphiql", fmt.Sprintf("%s://%s/", scheme, displayAddr(l.Addr())), "data_dir", cfg.DataDir)
	fmt.Fprintf(stdout, "meshgate: serving %s://%s/graphql (GraphiQL at /)\n", scheme, displayAddr(l.Addr()))

	if *debugListen != "" {
		stopDebug, err := serveDebug(*debugListen, srv.MetricsHandler(), log)
		if err != nil {
			return err
		}
		defer stopDebug()
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l, tlsCfg) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// Hand the queues and lists off while still serving (streams move
		// with their queues), then close what is left with going-away.
		lctx, lcancel := context.WithTimeout(sctx, cfg.ShutdownTimeout*2/3)
		if err := node.Leave(lctx); err != nil {
			log.Warn("leaving the cluster", "err", err)
		}
		lcancel()
		done <- srv.Shutdown(sctx)
	}()
	second := make(chan os.Signal, 1)
	notifySecond(second)
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	case <-second:
		log.Warn("second signal: exiting now")
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// flagsFromEnv sets every flag not given on the command line from
// MESHGATE_<FLAG> (dashes become underscores), so the order is: config
// file, then environment, then flags.
func flagsFromEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		key := "MESHGATE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(key); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
		}
	})
	return errors.Join(errs...)
}
