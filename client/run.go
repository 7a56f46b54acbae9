package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

var (
	errBlocked = errors.New("websocket refused by the network or a proxy")
	errRenew   = errors.New("token renewed: reconnecting with it")
)

// run keeps the client's stream going until Close.
func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	blocked, pollSince := 0, time.Time{}
	for attempt := 0; ctx.Err() == nil; attempt++ {
		useWS := c.opts.Transport == "ws" || c.opts.Transport == "auto" && (blocked < 3 || time.Since(pollSince) > time.Minute)
		var err error
		start := time.Now()
		if useWS {
			err = c.stream(ctx)
			if errors.Is(err, errBlocked) {
				if blocked++; blocked == 3 {
					pollSince = time.Now()
					c.log.Info("WebSocket is blocked: falling back to long-poll")
				}
			} else if err != nil && time.Since(start) > 5*time.Second {
				blocked = 0
			}
		} else {
			err = c.poll(ctx)
			if time.Since(pollSince) > time.Minute {
				blocked = 0 // try WebSocket again now and then
			}
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 5*time.Second {
			attempt = 0 // it ran a while: start the backoff over
		}
		c.stats.reconnects.Add(1)
		c.setState(Reconnecting)
		c.log.Debug("stream ended", "err", err)
		switch {
		case errors.Is(err, errRenew):
			continue
		case IsCode(err, "QUEUE_NOT_FOUND"):
			// The gateway lost the queue (its node died): make a new one
			// and subscribe again; watches learn what changed meanwhile.
			for ctx.Err() == nil {
				if err := c.makeQueue(ctx); err == nil {
					break
				}
				c.nextURL()
				sleep(ctx, c.backoff(attempt))
				attempt++
			}
			continue
		case IsCode(err, "UNAUTHENTICATED") || IsCode(err, "FORBIDDEN"):
			if c.refreshToken(ctx) == nil {
				continue
			}
		}
		c.nextURL()
		sleep(ctx, c.backoff(attempt))
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// stream reads the queue over one WebSocket until it ends.
func (c *Client) stream(ctx context.Context) error {
	url := c.url()
	wsURL := "ws" + strings.TrimPrefix(url, "http")
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{HTTPClient: c.opts.HTTPClient, Subprotocols: []string{"graphql-transport-ws"}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols && resp.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("%w: %s", errBlocked, resp.Status)
		}
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	send := func(v any) error {
		b, _ := json.Marshal(v)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return conn.Write(wctx, websocket.MessageText, b)
	}
	if err := send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + c.currentToken()}}); err != nil {
		return err
	}
	streamQueue := func() error {
		c.mu.Lock()
		q, after := c.queue, c.lastSeq
		c.mu.Unlock()
		return send(map[string]any{"id": "n", "type": "subscribe", "payload": map[string]any{
			"query":     `subscription($q:String!,$a:Seq){ notifications(queue:$q, after:$a) { ` + notificationFields + ` } }`,
			"variables": map[string]any{"q": q, "a": after}}})
	}
	if err := streamQueue(); err != nil {
		return err
	}
	// exec runs a mutation on this connection (graphql-transport-ws runs
	// any operation), so a device whose queue is gone (its node died)
	// makes a new one, subscribes and streams on one connection: what a
	// reconnect storm costs the gateway is one connection per device.
	ops := 0
	exec := func(ctx context.Context, query string, vars map[string]any, out any) error {
		ops++
		id := fmt.Sprint("m", ops)
		if err := send(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}}); err != nil {
			return err
		}
		var result error = errors.New("meshgate: the operation completed without a result")
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				return err
			}
			var m wsMessage
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			if m.Type == "ping" {
				_ = send(map[string]any{"type": "pong"})
				continue
			}
			if m.ID != id {
				continue
			}
			switch m.Type {
			case "next":
				var r struct {
					Data   json.RawMessage
					Errors []gqlError
				}
				switch {
				case json.Unmarshal(m.Payload, &r) != nil:
					result = errors.New("meshgate: malformed result")
				case len(r.Errors) > 0:
					result = &Error{Code: r.Errors[0].Extensions.Code, Message: r.Errors[0].Message}
				case out != nil:
					result = json.Unmarshal(r.Data, out)
				default:
					result = nil
				}
			case "error":
				return opError(m.Payload)
			case "complete":
				return result
			}
		}
	}
	// Renew the token on the live connection before it expires: a new
	// connection with the new token, resuming where this one is.
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	renew := make(chan struct{})
	if exp, ok := expiry(c.currentToken()); ok && c.opts.Token != nil {
		go func() {
			select {
			case <-rctx.Done():
			case <-time.After(time.Until(exp.Add(-time.Minute))):
				if c.refreshToken(rctx) == nil {
					close(renew)
					conn.Close(websocket.StatusNormalClosure, "renewing token")
				}
			}
		}()
	}
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			select {
			case <-renew:
				return errRenew
			default:
			}
			switch websocket.CloseStatus(err) {
			case 4401, 4403:
				return &Error{Code: "UNAUTHENTICATED", Message: err.Error()}
			}
			return err
		}
		var m wsMessage
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		switch m.Type {
		case "connection_ack":
			c.setState(Streaming)
		case "ping":
			_ = send(map[string]any{"type": "pong"})
		case "next":
			var p struct {
				Data   struct{ Notifications notification }
				Errors []gqlError
			}
			if json.Unmarshal(m.Payload, &p) != nil {
				continue
			}
			if len(p.Errors) > 0 { // an error at subscribe (QUEUE_NOT_FOUND): a result, then complete
				return &Error{Code: p.Errors[0].Extensions.Code, Message: p.Errors[0].Message}
			}
			c.dispatch(ctx, p.Data.Notifications)
		case "error":
			err := opError(m.Payload)
			if !IsCode(err, "QUEUE_NOT_FOUND") {
				return err
			}
			// The gateway lost the queue: make a new one and subscribe
			// again on this connection; watches learn what changed. The
			// client is not Streaming until its subscriptions are back.
			c.setState(Reconnecting)
			if err := c.makeQueueWith(ctx, exec); err != nil {
				// Half made: run makes a whole new queue over HTTP.
				return &Error{Code: "QUEUE_NOT_FOUND", Message: "making the queue again on the stream: " + err.Error()}
			}
			if err := streamQueue(); err != nil {
				return err
			}
			c.setState(Streaming)
		case "complete":
			return errors.New("stream completed by the gateway")
		}
	}
}

// wsMessage is a graphql-transport-ws message.
type wsMessage struct {
	ID      string
	Type    string
	Payload json.RawMessage
}

// opError is the error of an operation's error message.
func opError(payload json.RawMessage) error {
	var errs []gqlError
	_ = json.Unmarshal(payload, &errs)
	if len(errs) > 0 {
		return &Error{Code: errs[0].Extensions.Code, Message: errs[0].Message}
	}
	return errors.New("stream error")
}

// poll reads the queue with HTTP long-polls; each poll renews the lease.
func (c *Client) poll(ctx context.Context) error {
	c.setState(Polling)
	deadline := time.Now().Add(time.Minute) // then try WebSocket again
	for ctx.Err() == nil && time.Now().Before(deadline) {
		c.mu.Lock()
		q, after := c.queue, c.lastSeq
		c.mu.Unlock()
		var out struct {
			Notifications struct {
				Items []notification
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		err := c.gqlOnce(pctx, `query($q:String!,$a:Seq){ notifications(queue:$q, after:$a, limit:1000, waitSeconds:25) { items { `+notificationFields+` } } }`,
			map[string]any{"q": q, "a": after}, &out)
		cancel()
		if err != nil {
			return err
		}
		for _, n := range out.Notifications.Items {
			c.dispatch(ctx, n)
		}
	}
	return nil
}
