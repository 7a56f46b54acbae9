package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"meshgate/client"
)

// httpClient trusts cacert (PEM) when given.
func httpClient(cacert string) (*http.Client, error) {
	cfg := &tls.Config{}
	if cacert != "" {
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", cacert)
		}
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

// watch is `meshgate watch`: it prints the notifications of resources as
// they come, and rides through restarts and lost queues (the SDK).
func watch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "https://localhost:8443/graphql", "the gateway's GraphQL endpoint; several, comma-separated, for a cluster")
	token := fs.String("token", os.Getenv("MESHGATE_TOKEN"), "a bearer token (default $MESHGATE_TOKEN)")
	cacert := fs.String("cacert", "", "trust this CA certificate (PEM), e.g. meshgate-data/tls-cert.pem")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	transport := fs.String("transport", "auto", "auto (WebSocket, else long-poll), ws or poll")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *token == "" {
		return errors.New("watch: --token (or MESHGATE_TOKEN) is required")
	}
	if fs.NArg() == 0 {
		return errors.New("usage: meshgate watch [flags] RESOURCE[@ETAG] [RESOURCE[@ETAG]]")
	}
	hc, err := httpClient(*cacert)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	urls := splitList(*url)
	c, err := client.Dial(ctx, urls[0], *token, &client.Options{HTTPClient: hc, URLs: urls[1:], Transport: *transport})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer c.Close()
	var mu sync.Mutex
	emit := func(v map[string]any, line string) {
		mu.Lock()
		defer mu.Unlock()
		if *asJSON {
			b, _ := json.Marshal(v)
			fmt.Fprintln(stdout, string(b))
		} else {
			fmt.Fprintln(stdout, line)
		}
	}
	go func() {
		for s := range c.States() {
			emit(map[string]any{"state": s, "queue": c.Queue()}, fmt.Sprintf("-- %s", s))
		}
	}()
	var wg sync.WaitGroup
	for _, arg := range fs.Args() {
		res, known, _ := strings.Cut(arg, "@")
		w, err := c.Watch(ctx, res, "", known)
		if err != nil {
			return fmt.Errorf("watch %s: %w", res, err)
		}
		emit(map[string]any{"watching": res, "etag": w.Etag()}, fmt.Sprintf("watching %s (etag %s)", res, w.Etag()))
		wg.Go(func() {
			for ev := range w.Events() {
				v := map[string]any{"kind": ev.Kind, "resource": ev.Resource, "etag": ev.Etag, "seq": ev.Seq, "time": ev.Time}
				line := fmt.Sprintf("%s %-18s %s etag %s", ev.Time.Format("15:04:05.000"), ev.Kind, ev.Resource, ev.Etag)
				if len(ev.Payload) > 0 && string(ev.Payload) != "null" {
					v["payload"] = ev.Payload
					line += " " + string(ev.Payload)
				}
				emit(v, line)
			}
		})
	}
	go func() {
		for ev := range c.Invites() {
			emit(map[string]any{"kind": ev.Kind, "from": ev.From, "payload": ev.Payload}, fmt.Sprintf("%s %s from %s %s", ev.Time.Format("15:04:05.000"), ev.Kind, ev.From, ev.Payload))
		}
	}()
	<-ctx.Done()
	return nil
}

// publishCmd is `meshgate publish RESOURCE ETAG [PAYLOAD]` for scripts.
func publishCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "https://localhost:8443/graphql", "the gateway's GraphQL endpoint")
	token := fs.String("token", os.Getenv("MESHGATE_TOKEN"), "a bearer token with the publish scope (default $MESHGATE_TOKEN)")
	cacert := fs.String("cacert", "", "trust this CA certificate (PEM)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 || fs.NArg() > 3 {
		return errors.New("usage: meshgate publish [flags] RESOURCE ETAG [JSON-PAYLOAD]")
	}
	vars := map[string]any{"r": fs.Arg(0), "e": fs.Arg(1)}
	if fs.NArg() == 3 {
		var p any
		if err := json.Unmarshal([]byte(fs.Arg(2)), &p); err != nil {
			return fmt.Errorf("publish: the payload is not JSON: %w", err)
		}
		vars["p"] = p
	}
	hc, err := httpClient(*cacert)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	p := &prober{url: *url, token: *token, timeout: 30 * time.Second, client: hc, out: stdout}
	var out struct{ Publish int }
	if err := p.gql(ctx, `mutation($r:String!,$e:String!,$p:JSON){ publish(resource:$r, etag:$e, payload:$p) }`, vars, &out); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	fmt.Fprintf(stdout, "%d\n", out.Publish)
	return nil
}
