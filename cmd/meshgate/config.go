package main

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"meshgate/internal/certs"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/goccy/go-yaml"

	"meshgate/internal/faults"
	"meshgate/plugins/host"
	"meshgate/server"
	"meshgate/shard"
)

// fileConfig is the config file's shape. Every field is optional; the
// README's Configuration section lists defaults and limits.
type fileConfig struct {
	Listen          string        `yaml:"listen"`
	DataDir         string        `yaml:"data_dir"`
	TLSCert         string        `yaml:"tls_cert"`
	TLSKey          string        `yaml:"tls_key"`
	InsecureHTTP    bool          `yaml:"insecure_http"`
	LogLevel        string        `yaml:"log_level"`
	LogFormat       string        `yaml:"log_format"` // text, json or auto (""): text on a terminal
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	Auth            struct {
		Keys          []server.Key `yaml:"keys"`
		DisableDevKey bool         `yaml:"disable_dev_key"`
		// MaxTokenLifetime: how far away a token's exp may be (default 8760h).
		MaxTokenLifetime time.Duration `yaml:"max_token_lifetime"`
	} `yaml:"auth"`
	// Faults injects failures on purpose (off by default); see README.
	Faults faultConfig `yaml:"faults"`
	// Plugins lists the publisher plugins; absent means every built-in.
	Plugins []host.Plugin     `yaml:"plugins"`
	Store   shard.Config      `yaml:"queues"` // decoded straight into the store's config
	Server  limitsConfig      `yaml:"limits"` // decoded straight into server.Config, with three keys of its own
	Cluster clusterConfig     `yaml:"cluster"`
	CORS    server.CORSConfig `yaml:"cors"`
	Memory  memoryConfig      `yaml:"memory"`
}

// memoryConfig tunes the garbage collector (see internal/gctune).
type memoryConfig struct {
	// GCHeadroomMiB is the heap growth allowed above the live heap, in MiB:
	// GOGC falls as the live heap grows (never below 25). 0: default 32;
	// -1: Go's own GOGC, untouched.
	GCHeadroomMiB int `yaml:"gc_headroom_mib"`
}

type faultConfig struct {
	Seed    uint64        `yaml:"seed"`
	HTTP    faults.Config `yaml:"http"`
	Plugins faults.Config `yaml:"plugins"`
	Cluster faults.Config `yaml:"cluster"`
}

// parseFaults reads --faults: comma-separated point.key=value pairs, with
// point http or plugins and key error (probability), delay (duration) or
// delay_p (probability); or seed=N.
func parseFaults(spec string, into *faultConfig) error {
	for _, kv := range strings.Split(spec, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--faults: %q is not key=value", kv)
		}
		if k == "seed" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return fmt.Errorf("--faults: seed: %w", err)
			}
			into.Seed = n
			continue
		}
		point, key, _ := strings.Cut(k, ".")
		var c *faults.Config
		switch point {
		case "http":
			c = &into.HTTP
		case "plugins":
			c = &into.Plugins
		case "cluster":
			c = &into.Cluster
		default:
			return fmt.Errorf("--faults: unknown point %q (http, plugins or cluster)", point)
		}
		var err error
		switch key {
		case "error":
			c.ErrorProbability, err = strconv.ParseFloat(v, 64)
		case "delay_p":
			c.DelayProbability, err = strconv.ParseFloat(v, 64)
		case "delay":
			c.Delay, err = time.ParseDuration(v)
		default:
			return fmt.Errorf("--faults: unknown key %q (error, delay, delay_p)", key)
		}
		if err != nil {
			return fmt.Errorf("--faults: %s: %w", k, err)
		}
	}
	return nil
}

// limitsConfig is the `limits:` section: server.Config as it is, plus the
// keys that live elsewhere in Go: the node's stream count
// (server.Limits.MaxConns, beside per_user in the file), the payload cap
// (graph.Resolver), and the websocket section, whose coalesce_writes is
// server.WSConfig.NoCoalesce inverted.
type limitsConfig struct {
	server.Config   `yaml:",inline"`
	MaxStreams      int      `yaml:"max_streams"`
	MaxPayloadBytes int      `yaml:"max_payload_bytes"`
	WS              wsConfig `yaml:"websocket"`
}

type wsConfig struct {
	server.WSConfig `yaml:",inline"`
	// CoalesceWrites: absent or true, writes coalesce under load.
	CoalesceWrites *bool `yaml:"coalesce_writes"`
}

// serverConfig is the server's config with the section's extra keys put
// where the server has them.
func (c limitsConfig) serverConfig(log *slog.Logger) server.Config {
	s := c.Config
	s.Limits.MaxConns = c.MaxStreams
	s.WS = c.WS.WSConfig
	s.WS.NoCoalesce = c.WS.CoalesceWrites != nil && !*c.WS.CoalesceWrites
	s.Logger = log
	return s
}

func loadConfig(path string) (fileConfig, error) {
	var c fileConfig
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		if err := yaml.UnmarshalWithOptions(b, &c, yaml.DisallowUnknownField()); err != nil {
			return c, fmt.Errorf("config %s: %s", path, yaml.FormatError(err, false, true))
		}
	}
	return c, nil
}

// validate applies defaults and reports every problem at once.
func (c *fileConfig) validate(path string) error {
	if c.Listen == "" {
		c.Listen = ":8443"
		if host, _, err := net.SplitHostPort(withPort(c.Cluster.Bind, defaultGossipPort)); err == nil && host != "" {
			c.Listen = net.JoinHostPort(host, "8443") // several nodes on one machine: one address each
		}
	}
	if c.DataDir == "" {
		c.DataDir = "./meshgate-data"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	var errs []error
	where := "flags"
	if path != "" {
		where = path
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("%s: log_level: %q is not debug, info, warn or error", where, c.LogLevel))
	}
	if err := checkLogFormat(c.LogFormat); err != nil {
		errs = append(errs, fmt.Errorf("%s: log_format: %w", where, err))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, fmt.Errorf("%s: tls_cert and tls_key go together", where))
	}
	if c.InsecureHTTP && c.TLSCert != "" {
		errs = append(errs, fmt.Errorf("%s: insecure_http and tls_cert exclude each other", where))
	}
	if c.Auth.DisableDevKey && len(c.Auth.Keys) == 0 {
		errs = append(errs, fmt.Errorf("%s: auth.disable_dev_key needs at least one auth.keys entry", where))
	}
	if err := c.Faults.HTTP.Check(); err != nil {
		errs = append(errs, fmt.Errorf("%s: faults.http: %w", where, err))
	}
	if err := c.Faults.Plugins.Check(); err != nil {
		errs = append(errs, fmt.Errorf("%s: faults.plugins: %w", where, err))
	}
	if err := c.Faults.Cluster.Check(); err != nil {
		errs = append(errs, fmt.Errorf("%s: faults.cluster: %w", where, err))
	}
	errs = append(errs, c.Cluster.check(where)...)
	if c.Memory.GCHeadroomMiB < -1 {
		errs = append(errs, fmt.Errorf("%s: memory.gc_headroom_mib: %d is neither -1 (off) nor a size in MiB", where, c.Memory.GCHeadroomMiB))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("%s: shutdown_timeout must be positive", where))
	}
	return errors.Join(errs...)
}

// tls returns the listener's TLS config: the given pair, or a self-signed
// development certificate made on first run. nil for --insecure-http.
func (c *fileConfig) tls(log *slog.Logger) (*tls.Config, error) {
	if c.InsecureHTTP {
		return nil, nil
	}
	cert, key := c.TLSCert, c.TLSKey
	if cert == "" {
		var fp string
		var created bool
		var err error
		host, _, _ := net.SplitHostPort(c.Listen) // the certificate covers the listen host too
		cert, key, fp, created, err = certs.EnsureDevCert(c.DataDir, host)
		if err != nil {
			return nil, err
		}
		msg := "using self-signed development certificate"
		if created {
			msg = "created self-signed development certificate"
		}
		log.Info(msg, "cert", cert, "sha256", fp, "hint", "curl --cacert "+cert)
	}
	cfg, err := certs.TLSConfig(cert, key)
	if err != nil || len(c.Cluster.GossipKeys) == 0 {
		return cfg, err
	}
	// Every node seals session tickets with keys derived from the
	// cluster's secret: a device resumes its TLS session on whichever
	// node it reconnects to (server.ShareSessionTickets).
	var secrets [][]byte
	for _, k := range c.Cluster.GossipKeys {
		b, _ := base64.StdEncoding.DecodeString(k) // checked by check
		secrets = append(secrets, b)
	}
	return cfg, server.ShareSessionTickets(cfg, secrets, nil)
}

func notifySecond(ch chan os.Signal) {
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
}
