package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

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
	dataDir := fs.String("data-dir", "", "data directory for the development key and certificate (default ./meshgate-data)")
	listen := fs.String("listen", "", "HTTPS listen address (default :8443)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate (PEM); default: a self-signed one in the data directory")
	tlsKey := fs.String("tls-key", "", "TLS private key (PEM)")
	insecure := fs.Bool("insecure-http", false, "serve plain HTTP, only behind a TLS-terminating proxy")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default info)")
	logFormat := fs.String("log-format", "", "text, json or auto (default auto: text when stderr is a terminal, JSON otherwise)")
	faultSpec := fs.String("faults", "", "inject faults, e.g. http.error=0.1,http.delay=50ms,http.delay_p=0.2,plugins.error=0.05 (off by default)")
	debugListen := fs.String("debug-listen", "", "serve net/http/pprof on this address (loopback only, e.g. 127.0.0.1:6060); off by default")
	nodeName := fs.String("node-name", "", "cluster: this node's unique name (default: the host name)")
	bind := fs.String("bind", "", "cluster: gossip address host[:port] (default port 7946); without it meshgate is a single node")
	advertise := fs.String("advertise", "", "cluster: gossip address peers use (default --bind)")
	rpc := fs.String("rpc", "", "cluster: node-to-node gRPC address (default the --bind host, port 7947)")
	join := fs.String("join", "", "cluster: comma-separated gossip addresses of members to join")
	weight := fs.Int("weight", 0, "cluster: this node's share of the ring relative to others, 1-16 (default 1)")
	gossipKey := fs.String("gossip-key", "", "cluster: comma-separated base64 AES keys encrypting gossip; the first encrypts")
	trusted := fs.Bool("trusted-network", false, "cluster: gossip in clear beyond loopback (only where no one else can reach the gossip port)")
	clusterCA := fs.String("cluster-ca", "", "cluster: CA certificate for node-to-node mutual TLS (default: a development CA in the data directory)")
	clusterCAKey := fs.String("cluster-ca-key", "", "cluster: CA key; each node issues itself a certificate")
	clusterCert := fs.String("cluster-cert", "", "cluster: this node's certificate, issued by --cluster-ca")
	clusterKey := fs.String("cluster-key", "", "cluster: this node's key")
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
	// Flags win over the file.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data-dir":
			cfg.DataDir = *dataDir
		case "listen":
			cfg.Listen = *listen
		case "tls-cert":
			cfg.TLSCert = *tlsCert
		case "tls-key":
			cfg.TLSKey = *tlsKey
		case "insecure-http":
			cfg.InsecureHTTP = *insecure
		case "log-level":
			cfg.LogLevel = *logLevel
		case "log-format":
			cfg.LogFormat = *logFormat
		case "node-name":
			cfg.Cluster.NodeName = *nodeName
		case "bind":
			cfg.Cluster.Bind = *bind
		case "advertise":
			cfg.Cluster.Advertise = *advertise
		case "rpc":
			cfg.Cluster.RPC = *rpc
		case "join":
			cfg.Cluster.Join = splitList(*join)
		case "weight":
			cfg.Cluster.Weight = *weight
		case "gossip-key":
			cfg.Cluster.GossipKeys = splitList(*gossipKey)
		case "trusted-network":
			cfg.Cluster.TrustedNetwork = *trusted
		case "cluster-ca":
			cfg.Cluster.CA = *clusterCA
		case "cluster-ca-key":
			cfg.Cluster.CAKey = *clusterCAKey
		case "cluster-cert":
			cfg.Cluster.Cert = *clusterCert
		case "cluster-key":
			cfg.Cluster.Key = *clusterKey
		}
	})
	if err := parseFaults(*faultSpec, &cfg.Faults); err != nil {
		return err
	}
	if err := cfg.validate(*configPath); err != nil {
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
	scfg := cfg.Store.shardConfig(log)
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
	if err := node.Start(ctx); err != nil {
		return err
	}
	defer node.Close()
	pubs.SetSink(node)
	routed := node.Publishers(pubs) // authorize and publish at each resource's owner
	startCtx, cancelStart := context.WithTimeout(ctx, 30*time.Second)
	pubs.Start(startCtx)
	cancelStart()
	defer pubs.Close() // after the server has stopped: plugins go last
	if !pubs.Ready() {
		log.Warn("not every plugin is up yet; their schemes answer UNAVAILABLE until they are")
	}
	srvCfg := cfg.Server.serverConfig(log)
	srvCfg.Ready = func() bool { return pubs.Ready() && node.Joined() }
	srvCfg.Faults, srvCfg.FaultSeed = cfg.Faults.HTTP, cfg.Faults.Seed
	srvCfg.Plugins = func() []server.PluginStatus {
		var out []server.PluginStatus
		for _, p := range pubs.Health() {
			out = append(out, server.PluginStatus{Name: p.Name, Up: p.Up, Restarts: p.Restarts})
		}
		return out
	}
	srv, err := server.New(srvCfg, auth, node, &graph.Resolver{Store: node, Publishers: routed, MaxPayloadBytes: cfg.Server.MaxPayloadBytes})
	if err != nil {
		return err
	}

	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "https"
	if cfg.InsecureHTTP {
		scheme = "http"
		log.Warn("SERVING PLAIN HTTP: tokens and notifications cross the network unencrypted; use --insecure-http only behind a TLS-terminating proxy")
	}
	tlsCfg, err := cfg.tls(log)
	if err != nil {
		l.Close()
		return err
	}
	log.Info("meshgate serving", "url", fmt.Sprintf("%s://%s/graphql", scheme, displayAddr(l.Addr())), "graphiql", fmt.Sprintf("%s://%s/", scheme, displayAddr(l.Addr())), "data_dir", cfg.DataDir)
	fmt.Fprintf(stdout, "meshgate: serving %s://%s/graphql (GraphiQL at /)\n", scheme, displayAddr(l.Addr()))

	if *debugListen != "" {
		stopDebug, err := serveDebug(*debugListen, srv.MetricsHandler(), log)
		if err != nil {
			l.Close()
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
