package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// probe is `meshgate probe`: it walks the whole path from outside, as a
// client would, prints each step's latency, and fails naming the step
// that broke. Usable as a Kubernetes probe, a cron check or in CI.
func probe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "https://localhost:8443/graphql", "the gateway's GraphQL endpoint")
	token := fs.String("token", os.Getenv("MESHGATE_TOKEN"), "a bearer token with the publish scope (default $MESHGATE_TOKEN)")
	cacert := fs.String("cacert", "", "trust this CA certificate (PEM), e.g. meshgate-data/tls-cert.pem")
	timeout := fs.Duration("timeout", 10*time.Second, "time allowed for each step")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *token == "" {
		return errors.New("probe: --token (or MESHGATE_TOKEN) is required")
	}
	hc, err := httpClient(*cacert)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	hc.Timeout = *timeout
	p := &prober{url: *url, token: *token, timeout: *timeout, out: stdout, client: hc}
	return p.run(ctx)
}

type prober struct {
	url, token string
	timeout    time.Duration
	client     *http.Client
	out        io.Writer
}

// step runs f, prints its latency, and turns its error into one naming it.
func (p *prober) step(name string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	d := time.Since(start)
	if err != nil {
		fmt.Fprintf(p.out, "FAIL %-24s %8.1f ms  %v\n", name, float64(d.Microseconds())/1000, err)
		return fmt.Errorf("probe failed at %q: %w", name, err)
	}
	fmt.Fprintf(p.out, "ok   %-24s %8.1f ms\n", name, float64(d.Microseconds())/1000)
	return nil
}

func (p *prober) run(context.Context) error {
	var me, queue string
	nonce := make([]byte, 6)
	_, _ = rand.Read(nonce)
	etag := "probe-" + hex.EncodeToString(nonce)
	var ws *websocket.Conn
	defer func() {
		if ws != nil {
			ws.CloseNow()
		}
	}()
	steps := []struct {
		name string
		f    func(ctx context.Context) error
	}{
		{"authenticate", func(ctx context.Context) error {
			var d struct{ Me struct{ User string } }
			err := p.gql(ctx, `{ me { user } }`, nil, &d)
			me = d.Me.User
			return err
		}},
		{"create queue", func(ctx context.Context) error {
			var d struct{ CreateQueue struct{ Name string } }
			err := p.gql(ctx, `mutation { createQueue(ttlSeconds: 60) { name } }`, nil, &d)
			queue = d.CreateQueue.Name
			return err
		}},
		{"subscribe", func(ctx context.Context) error {
			return p.gql(ctx, `mutation($q:String!,$r:String!){ subscribe(queue:$q, resource:$r) { etag } }`,
				map[string]any{"q": queue, "r": "user:" + me + "/probe"}, nil)
		}},
		{"open WebSocket stream", func(ctx context.Context) error {
			c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(p.url, "http"), &websocket.DialOptions{HTTPClient: p.client, Subprotocols: []string{"graphql-transport-ws"}})
			if err != nil {
				return err
			}
			if resp.Body != nil {
				resp.Body.Close()
			}
			ws = c
			if err := wsSend(ctx, c, map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + p.token}}); err != nil {
				return err
			}
			if _, err := wsAwait(ctx, c, `"connection_ack"`); err != nil {
				return err
			}
			return wsSend(ctx, c, map[string]any{"id": "probe", "type": "subscribe", "payload": map[string]any{
				"query": `subscription($q:String!){ notifications(queue:$q) { seq etag } }`, "variables": map[string]any{"q": queue}}})
		}},
		{"publish", func(ctx context.Context) error {
			return p.gql(ctx, `mutation($r:String!,$e:String!){ publish(resource:$r, etag:$e) }`, map[string]any{"r": "user:" + me + "/probe", "e": etag}, nil)
		}},
		{"receive over WebSocket", func(ctx context.Context) error {
			_, err := wsAwait(ctx, ws, etag)
			return err
		}},
		{"receive by poll", func(ctx context.Context) error {
			var d struct {
				Notifications struct{ Items []struct{ Etag string } }
			}
			if err := p.gql(ctx, `query($q:String!){ notifications(queue:$q, waitSeconds: 5) { items { etag } } }`, map[string]any{"q": queue}, &d); err != nil {
				return err
			}
			for _, it := range d.Notifications.Items {
				if it.Etag == etag {
					return nil
				}
			}
			return errors.New("the published notification is not in the queue")
		}},
		{"delete queue", func(ctx context.Context) error {
			return p.gql(ctx, `mutation($q:String!){ deleteQueue(name:$q) }`, map[string]any{"q": queue}, nil)
		}},
	}
	for _, s := range steps {
		if err := p.step(s.name, s.f); err != nil {
			return err
		}
	}
	return nil
}

func (p *prober) gql(ctx context.Context, query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequestWithContext(ctx, "POST", p.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Data   json.RawMessage
		Errors []struct {
			Message    string
			Extensions map[string]any
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("HTTP %d, not a GraphQL response", resp.StatusCode)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("%v: %s", r.Errors[0].Extensions["code"], r.Errors[0].Message)
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}

func wsSend(ctx context.Context, c *websocket.Conn, v any) error {
	b, _ := json.Marshal(v)
	return c.Write(ctx, websocket.MessageText, b)
}

// wsAwait reads until a message contains want; an error message fails.
func wsAwait(ctx context.Context, c *websocket.Conn, want string) ([]byte, error) {
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return nil, err
		}
		if strings.Contains(string(b), want) {
			return b, nil
		}
		if strings.Contains(string(b), `"type":"error"`) {
			return nil, fmt.Errorf("stream error: %s", b)
		}
	}
}
