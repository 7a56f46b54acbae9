package graph_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"

	"meshgate/graph"
	"meshgate/shard"
	"meshgate/shard/cluster"
)

// TestPoll_Linger checks what a long-poll's linger promises: the
// notifications that land within it ride in the answer of the one that
// woke the poll, and it never holds a full page, a poll with wait 0, or
// any poll when it is turned off.
func TestPoll_Linger(t *testing.T) {
	phone := shard.Principal{User: "alice", Device: "phone"}
	type result struct {
		items int
		err   []byte
	}
	for _, tc := range []struct {
		name    string
		linger  time.Duration
		limit   int
		wait    int
		pending int // notifications in the queue before the poll
		later   int // notifications delivered once the poll has read the queue once
		want    int
	}{
		{name: "what lands within the linger rides along", linger: time.Second, limit: 100, wait: 30, pending: 1, later: 2, want: 3},
		{name: "a full page is answered at once", linger: time.Hour, limit: 2, wait: 30, pending: 3, want: 2},
		{name: "wait 0 is answered at once", linger: time.Hour, limit: 100, pending: 1, want: 1},
		{name: "a negative linger turns it off", linger: -1, limit: 100, wait: 30, pending: 1, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := shard.New(shard.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			polled := make(chan struct{}, 1)
			r := &graph.Resolver{Backend: pollSignal{cluster.Single(store), polled}, PollLinger: tc.linger}
			exec := executor.New(graph.NewExecutableSchema(graph.Config{Resolvers: r}))
			ctx := graph.WithPrincipal(graphql.StartOperationTrace(context.Background()), phone)
			q, _ := store.CreateQueue(ctx, phone, time.Minute)
			if _, err := store.Subscribe(ctx, allow{}, phone, q.Name, "user:alice/x", "", ""); err != nil {
				t.Fatal(err)
			}
			deliver := func(n int) {
				for range n {
					store.Deliver(&shard.Event{Kind: shard.Changed, Resource: "user:alice/x", Etag: "e", Time: time.Now()})
				}
			}
			deliver(tc.pending)
			opCtx, errs := exec.CreateOperationContext(ctx, &graphql.RawParams{
				Query:     `query($q:String!, $l:Int!, $w:Int!){ notifications(queue:$q, limit:$l, waitSeconds:$w) { items { seq } } }`,
				Variables: map[string]any{"q": q.Name, "l": tc.limit, "w": tc.wait},
			})
			if errs != nil {
				t.Fatal(errs)
			}
			op, ok := graph.ParsePollOp(opCtx)
			if !ok {
				t.Fatal("ParsePollOp: not recognised")
			}
			done := make(chan result, 1)
			go func() {
				resp := r.ExecPoll(ctx, op, graph.NewErrorPresenter(), graph.Recover(nil))
				var page struct {
					Notifications struct{ Items []struct{ Seq int } }
				}
				if len(resp.Errors) > 0 || json.Unmarshal(resp.Data, &page) != nil {
					b, _ := json.Marshal(resp)
					done <- result{err: b}
					return
				}
				done <- result{items: len(page.Notifications.Items)}
			}()
			if tc.later > 0 {
				// Deliver once the poll has read the queue and found one
				// notification: without the linger, that was its answer.
				select {
				case <-polled:
				case <-time.After(10 * time.Second):
					t.Fatal("the queue was never read")
				}
				deliver(tc.later)
			}
			select {
			case res := <-done:
				if res.err != nil || res.items != tc.want {
					t.Fatalf("got %d items (%s), want %d", res.items, res.err, tc.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the poll was held")
			}
		})
	}
}

// pollSignal is a Backend that says when a read of a queue has returned.
type pollSignal struct {
	graph.Backend
	polled chan struct{}
}

func (b pollSignal) Poll(ctx context.Context, p shard.Principal, name string, after uint64, limit int, wait time.Duration) (shard.Page, error) {
	pg, err := b.Backend.Poll(ctx, p, name, after, limit, wait)
	select {
	case b.polled <- struct{}{}:
	default:
	}
	return pg, err
}

// BenchmarkPoll is one page of 32 notifications of 200 bytes, answered on
// the fast path (ExecPoll) and by gqlgen's execution: what a poll costs
// besides HTTP.
func BenchmarkPoll(b *testing.B) {
	store, _ := shard.New(shard.Config{})
	defer store.Close()
	r := &graph.Resolver{Backend: cluster.Single(store)}
	exec := executor.New(graph.NewExecutableSchema(graph.Config{Resolvers: r}))
	exec.SetErrorPresenter(graph.NewErrorPresenter())
	exec.SetQueryCache(lru.New[*ast.QueryDocument](100)) // as the server: parsed and validated once
	p := shard.Principal{User: "u", Device: "d"}
	ctx := graph.WithPrincipal(graphql.StartOperationTrace(context.Background()), p)
	q, _ := store.CreateQueue(ctx, p, time.Hour)
	if _, err := store.Subscribe(ctx, allow{}, p, q.Name, "user:u/feed", "", ""); err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"i":12345,"t":1764590000000000000,"text":"a change of the resource, about two hundred bytes of it in all, as a small publish carries"}`)
	for range 32 {
		store.Deliver(&shard.Event{Kind: shard.Changed, Resource: "user:u/feed", Etag: "v1", Time: time.Now(), Payload: payload})
	}
	params := &graphql.RawParams{Query: `query($q:String!){ notifications(queue:$q, limit:1000) { lastSeq items { seq kind etag payload } } }`, Variables: map[string]any{"q": q.Name}}
	for _, path := range []string{"fast", "gqlgen"} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				opCtx, errs := exec.CreateOperationContext(ctx, params)
				if errs != nil {
					b.Fatal(errs)
				}
				var resp *graphql.Response
				if path == "fast" {
					op, _ := graph.ParsePollOp(opCtx)
					resp = r.ExecPoll(ctx, op, graph.NewErrorPresenter(), graph.Recover(nil))
				} else {
					h, rctx := exec.DispatchOperation(ctx, opCtx)
					resp = h(rctx)
				}
				if len(resp.Errors) > 0 {
					b.Fatal(resp.Errors)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/32, "ns/notification")
		})
	}
}
