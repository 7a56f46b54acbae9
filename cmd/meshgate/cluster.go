package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"meshgate/internal/certs"
	"net"
	"os"
	"strings"
	"time"

	"meshgate/internal/faults"
	"meshgate/shard"
	"meshgate/shard/cluster"
)

// clusterConfig is the `cluster:` section. Without bind, meshgate is a
// single node.
type clusterConfig struct {
	// NodeName is unique in the cluster. Default: the host name.
	NodeName string `yaml:"node_name"`
	// Bind is the gossip address, host or host:port (default port 7946).
	Bind string `yaml:"bind"`
	// Advertise is the gossip address peers use. Default Bind.
	Advertise string `yaml:"advertise"`
	// RPC is the node-to-node gRPC address. Default the bind host, port 7947.
	RPC string `yaml:"rpc"`
	// RPCAdvertise is the RPC address peers use. Default RPC.
	RPCAdvertise string `yaml:"rpc_advertise"`
	// Join lists gossip addresses of members to join (host or host:port).
	Join []string `yaml:"join"`
	// Weight: this node's share of the ring relative to others, 1-16.
	Weight int `yaml:"weight"`
	// GossipKeys: base64 AES keys (16, 24 or 32 bytes); the first encrypts.
	// Required when Bind is not a loopback address, unless TrustedNetwork.
	GossipKeys []string `yaml:"gossip_keys"`
	// TrustedNetwork lets a cluster gossip in clear beyond loopback: say
	// so only when no one else can reach the gossip port.
	TrustedNetwork bool `yaml:"trusted_network"`
	// CA is the cluster CA certificate (PEM). With CAKey, each node issues
	// itself a certificate at start; with Cert and Key, it uses those.
	// Default: a development CA made in the data directory.
	CA    string `yaml:"ca"`
	CAKey string `yaml:"ca_key"`
	Cert  string `yaml:"cert"`
	Key   string `yaml:"key"`
	// ProbeInterval: failure-detection probe period, default 1s.
	ProbeInterval time.Duration `yaml:"probe_interval"`
}

const (
	defaultGossipPort = "7946"
	defaultRPCPort    = "7947"
)

func withPort(addr, port string) string {
	if addr == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(addr, port)
}

// check applies defaults and reports every problem.
func (c *clusterConfig) check(where string) []error {
	if c.Bind == "" {
		return nil
	}
	var errs []error
	if c.NodeName == "" {
		h, _ := os.Hostname()
		c.NodeName = h
	}
	c.Bind = withPort(c.Bind, defaultGossipPort)
	c.Advertise = withPort(c.Advertise, defaultGossipPort)
	if c.RPC == "" {
		host, _, _ := net.SplitHostPort(c.Bind)
		c.RPC = net.JoinHostPort(host, defaultRPCPort)
	}
	for i, j := range c.Join {
		c.Join[i] = withPort(strings.TrimSpace(j), defaultGossipPort)
	}
	for _, a := range []struct{ key, v string }{{"bind", c.Bind}, {"advertise", c.Advertise}, {"rpc", c.RPC}, {"rpc_advertise", c.RPCAdvertise}} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: cluster.%s: %w", where, a.key, err))
		}
	}
	if c.Weight < 0 || c.Weight > 16 {
		errs = append(errs, fmt.Errorf("%s: cluster.weight must be 1-16", where))
	}
	for i, k := range c.GossipKeys {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || (len(b) != 16 && len(b) != 24 && len(b) != 32) {
			errs = append(errs, fmt.Errorf("%s: cluster.gossip_keys[%d]: want base64 of 16, 24 or 32 bytes", where, i))
		}
	}
	if host, _, err := net.SplitHostPort(c.Bind); err == nil && len(c.GossipKeys) == 0 && !c.TrustedNetwork {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			errs = append(errs, fmt.Errorf("%s: cluster.gossip_keys: required when gossip binds %s, beyond loopback (or set cluster.trusted_network: true)", where, host))
		}
	}
	if (c.Cert == "") != (c.Key == "") {
		errs = append(errs, fmt.Errorf("%s: cluster.cert and cluster.key go together", where))
	}
	if c.Cert != "" && c.CA == "" {
		errs = append(errs, fmt.Errorf("%s: cluster.cert needs cluster.ca", where))
	}
	if c.CAKey != "" && c.CA == "" {
		errs = append(errs, fmt.Errorf("%s: cluster.ca_key needs cluster.ca", where))
	}
	if c.CA != "" && c.CAKey == "" && c.Cert == "" {
		errs = append(errs, fmt.Errorf("%s: cluster.ca needs cluster.ca_key or cluster.cert and cluster.key", where))
	}
	if c.ProbeInterval < 0 {
		errs = append(errs, fmt.Errorf("%s: cluster.probe_interval must be positive", where))
	}
	return errs
}

// node builds this process's cluster node around store.
func (c *clusterConfig) node(store *shard.Store, dataDir string, current func(context.Context, []string) map[string]string, fc faults.Config, seed uint64, log *slog.Logger) (*cluster.Node, error) {
	if c.Bind == "" {
		n := cluster.Single(store)
		return n, nil
	}
	cfg := cluster.Config{
		Name: c.NodeName, Gossip: c.Bind, GossipAdvertise: c.Advertise, RPC: c.RPC, RPCAdvertise: c.RPCAdvertise,
		Join: c.Join, Weight: c.Weight, Logger: log, ProbeInterval: c.ProbeInterval,
		WaitReady: true, // owns keys once its plugins are up (serve calls SetReady)
	}
	for _, k := range c.GossipKeys {
		b, _ := base64.StdEncoding.DecodeString(k)
		cfg.GossipKeys = append(cfg.GossipKeys, b)
	}
	if len(cfg.GossipKeys) == 0 {
		log.Warn("gossip is not encrypted: set cluster.gossip_keys (membership messages travel in clear; node-to-node RPCs use mutual TLS either way)")
	}
	var err error
	switch {
	case c.Cert != "":
		cfg.ServerTLS, cfg.ClientTLS, err = certs.TLSFromFiles(c.CA, c.Cert, c.Key)
	case c.CA != "":
		cfg.ServerTLS, cfg.ClientTLS, err = certs.TLSFromCA(c.CA, c.CAKey, c.NodeName)
	default:
		ca, key, created, derr := certs.EnsureDevCA(dataDir)
		if derr != nil {
			return nil, derr
		}
		if created {
			log.Info("created development cluster CA; give every node this data directory or these files", "ca", ca)
		}
		cfg.ServerTLS, cfg.ClientTLS, err = certs.TLSFromCA(ca, key, c.NodeName)
	}
	if err != nil {
		return nil, err
	}
	cfg.Current = current
	if fc.Enabled() {
		inj := faults.New(fc, seed)
		cfg.Intercept = func(ctx context.Context, _ string) error { return inj.Before(ctx) }
	}
	return cluster.New(cfg, store)
}
