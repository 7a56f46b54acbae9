package main

import (
	"flag"
	"strconv"
)

// setting is a config value that a serve flag, and so MESHGATE_<FLAG>
// (flagsFromEnv), can set. The settings table is the one place such a flag
// is declared: serve registers a flag per entry and, once the file is
// loaded, writes every flag given into the field the entry points at.
type setting struct {
	flag, usage string
	// field points into the config: *string, *bool, *int, or *[]string
	// (the flag's value is a comma-separated list).
	field func(*fileConfig) any
}

var settings = []setting{
	{"data-dir", "data directory for the development key and certificate (default ./meshgate-data)", func(c *fileConfig) any { return &c.DataDir }},
	{"listen", "HTTPS listen address (default :8443)", func(c *fileConfig) any { return &c.Listen }},
	{"tls-cert", "TLS certificate (PEM); default: a self-signed one in the data directory", func(c *fileConfig) any { return &c.TLSCert }},
	{"tls-key", "TLS private key (PEM)", func(c *fileConfig) any { return &c.TLSKey }},
	{"insecure-http", "serve plain HTTP, only behind a TLS-terminating proxy", func(c *fileConfig) any { return &c.InsecureHTTP }},
	{"log-level", "debug, info, warn or error (default info)", func(c *fileConfig) any { return &c.LogLevel }},
	{"log-format", "text, json or auto (default auto: text when stderr is a terminal, JSON otherwise)", func(c *fileConfig) any { return &c.LogFormat }},
	{"node-name", "cluster: this node's unique name (default: the host name)", func(c *fileConfig) any { return &c.Cluster.NodeName }},
	{"bind", "cluster: gossip address host[:port] (default port 7946); without it meshgate is a single node", func(c *fileConfig) any { return &c.Cluster.Bind }},
	{"advertise", "cluster: gossip address peers use (default --bind)", func(c *fileConfig) any { return &c.Cluster.Advertise }},
	{"rpc", "cluster: node-to-node gRPC address (default the --bind host, port 7947)", func(c *fileConfig) any { return &c.Cluster.RPC }},
	{"join", "cluster: comma-separated gossip addresses of members to join", func(c *fileConfig) any { return &c.Cluster.Join }},
	{"weight", "cluster: this node's share of the ring relative to others, 1-16 (default 1)", func(c *fileConfig) any { return &c.Cluster.Weight }},
	{"gossip-key", "cluster: comma-separated base64 AES keys encrypting gossip; the first encrypts", func(c *fileConfig) any { return &c.Cluster.GossipKeys }},
	{"trusted-network", "cluster: gossip in clear beyond loopback (only where no one else can reach the gossip port)", func(c *fileConfig) any { return &c.Cluster.TrustedNetwork }},
	{"cluster-ca", "cluster: CA certificate for node-to-node mutual TLS (default: a development CA in the data directory)", func(c *fileConfig) any { return &c.Cluster.CA }},
	{"cluster-ca-key", "cluster: CA key; each node issues itself a certificate", func(c *fileConfig) any { return &c.Cluster.CAKey }},
	{"cluster-cert", "cluster: this node's certificate, issued by --cluster-ca", func(c *fileConfig) any { return &c.Cluster.Cert }},
	{"cluster-key", "cluster: this node's key", func(c *fileConfig) any { return &c.Cluster.Key }},
	{"cors-allowed-origins", "comma-separated origins (scheme://host[:port]) whose web pages may call /graphql, e.g. http://localhost:3000; * for any (not advised)", func(c *fileConfig) any { return &c.CORS.AllowedOrigins }},
}

// settingFlags registers a flag per setting on fs, of the field's type
// (so flag checks the text and its help shows the type). Their values wait
// until apply, since flags are parsed before the file they override is read.
func settingFlags(fs *flag.FlagSet) *settingValues {
	for _, s := range settings {
		switch s.field(&fileConfig{}).(type) {
		case *string, *[]string:
			fs.String(s.flag, "", s.usage)
		case *bool:
			fs.Bool(s.flag, false, s.usage)
		case *int:
			fs.Int(s.flag, 0, s.usage)
		default:
			panic("setting " + s.flag + ": a field of a type the table does not know")
		}
	}
	return &settingValues{fs: fs}
}

type settingValues struct{ fs *flag.FlagSet }

// apply writes every setting given (by flag or environment) into c.
func (sv *settingValues) apply(c *fileConfig) {
	given := map[string]string{}
	sv.fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
	for _, s := range settings {
		raw, ok := given[s.flag]
		if !ok {
			continue
		}
		switch p := s.field(c).(type) {
		case *string:
			*p = raw
		case *[]string:
			*p = splitList(raw)
		case *bool:
			*p, _ = strconv.ParseBool(raw) // flag parsed it already
		case *int:
			*p, _ = strconv.Atoi(raw)
		}
	}
}
