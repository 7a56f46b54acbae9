package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"meshgate/internal/certs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"meshgate/graph"
	"meshgate/internal/inproc"
	"meshgate/server"
	"meshgate/shard"
	"meshgate/shard/cluster"
)

// gateway is a real meshgate on loopback TLS for examples and tests.
type gateway struct {
	URL    string
	HTTP   *http.Client
	key    server.Key
	srv    *server.Server
	store  *shard.Store
	dir    string
	Server *server.Server
}

func startGateway() *gateway { return startGatewayWith(shard.Config{}) }

// startGatewayWith starts a gateway whose queues are configured by cfg.
func startGatewayWith(cfg shard.Config) *gateway {
	dir, err := os.MkdirTemp("", "meshgate-client")
	if err != nil {
		panic(err)
	}
	key, _, err := server.EnsureDevKey(dir)
	if err != nil {
		panic(err)
	}
	auth, err := server.NewAuthenticator([]server.Key{key}, nil)
	if err != nil {
		panic(err)
	}
	store, err := shard.New(cfg)
	if err != nil {
		panic(err)
	}
	node := cluster.Single(store)
	srv, err := server.New(server.Config{}, auth, node, &graph.Resolver{Backend: node, Publishers: inproc.New(node, nil)})
	if err != nil {
		panic(err)
	}
	cert, keyPath, _, _, err := certs.EnsureDevCert(dir)
	if err != nil {
		panic(err)
	}
	tlsCfg, err := certs.TLSConfig(cert, keyPath)
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(l, tlsCfg)
	pem, _ := os.ReadFile(filepath.Join(dir, certs.DevCertFile))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return &gateway{URL: "https://" + l.Addr().String() + "/graphql", HTTP: hc, key: key, srv: srv, store: store, dir: dir}
}

func (g *gateway) stop() {
	// First: a connection the transport dialed but never used is new to the
	// server, and Shutdown waits 5 s before it closes one.
	g.HTTP.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g.srv.Shutdown(ctx)
	g.store.Close()
	os.RemoveAll(g.dir)
}

// token mints a token for alice's device, valid for ttl.
func (g *gateway) token(device string, ttl time.Duration, scopes ...string) string {
	t, err := server.Mint(g.key, "alice", device, scopes, ttl, time.Now())
	if err != nil {
		panic(err)
	}
	return t
}

// do runs one GraphQL operation as tok.
func (g *gateway) do(tok, query string, vars map[string]any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest("POST", g.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := g.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct{ Errors []struct{ Message string } }
	_ = json.NewDecoder(resp.Body).Decode(&r)
	if len(r.Errors) > 0 {
		return fmt.Errorf("%s", r.Errors[0].Message)
	}
	return nil
}

// publish changes resource to etag, as a publisher would.
func (g *gateway) publish(resource, etag string) {
	if err := g.do(g.token("publisher", time.Hour, "publish"), `mutation($r:String!,$e:String!){ publish(resource:$r, etag:$e) }`, map[string]any{"r": resource, "e": etag}); err != nil {
		panic(err)
	}
}
