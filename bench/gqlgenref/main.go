package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
)

type resolver struct {
	mu   sync.Mutex
	subs map[chan *Event]struct{}
}

func (r *resolver) Mutation() MutationResolver         { return r }
func (r *resolver) Query() QueryResolver               { return r }
func (r *resolver) Subscription() SubscriptionResolver { return r }

func (r *resolver) Ok(context.Context) (bool, error) { return true, nil }

func (r *resolver) Publish(_ context.Context, i int, t string) (int, error) {
	ev := &Event{I: i, T: t}
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.subs {
		select {
		case ch <- ev:
		default: // a full subscriber loses the event (counted as lost by the tool)
		}
	}
	return len(r.subs), nil
}

func (r *resolver) Events(ctx context.Context) (<-chan *Event, error) {
	ch := make(chan *Event, 1024)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	go func() {
		<-ctx.Done()
		r.mu.Lock()
		delete(r.subs, ch)
		r.mu.Unlock()
	}()
	return ch, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9002", "listen address")
	flag.Parse()
	srv := handler.New(NewExecutableSchema(Config{Resolvers: &resolver{subs: make(map[chan *Event]struct{})}}))
	srv.AddTransport(&transport.Websocket{KeepAlivePingInterval: 10 * time.Second})
	srv.AddTransport(transport.POST{})
	http.Handle("/query", srv)
	log.Printf("gqlgenref listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
