package graph_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"

	"meshgate/graph"
	"meshgate/internal/inproc"
	"meshgate/shard"
	"meshgate/shard/cluster"
)

// TestPlanEncode_MatchesGqlgen checks the streaming fast path against the
// oracle: for each selection, the bytes Plan encodes must decode to what
// gqlgen's own execution of the same subscription returns.
func TestPlanEncode_MatchesGqlgen(t *testing.T) {
	store, err := shard.New(shard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	exec := executor.New(graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{Backend: cluster.Single(store), Publishers: inproc.New(store, nil)}}))
	exec.SetErrorPresenter(graph.NewErrorPresenter())

	alice := shard.Principal{User: "alice", Device: "laptop"}
	phone := shard.Principal{User: "alice", Device: "phone"}
	ctx := context.Background()

	for _, tc := range []struct {
		name  string
		query string
		vars  map[string]any
	}{
		{"all fields", `subscription($q:String!){ notifications(queue:$q) { seq kind resource etag etagUnknown publishedAt payload from { user device scopes } } }`, nil},
		{"aliases and order", `subscription($q:String!){ n: notifications(queue:$q) { e: etag s: seq k: kind s2: seq __typename } }`, nil},
		{"fragments", `subscription($q:String!){ notifications(queue:$q) { ...A ... on Notification { kind } } } fragment A on Notification { seq etag from { ...P } } fragment P on Principal { device __typename }`, nil},
		{"skip and include", `subscription($q:String!, $yes:Boolean!){ notifications(queue:$q) { seq etag @include(if:$yes) kind @skip(if:$yes) payload @skip(if:false) } }`, map[string]any{"yes": true}},
		{"etagUnknown, aliased", `subscription($q:String!){ notifications(queue:$q) { u: etagUnknown etag etagUnknown } }`, nil},
		{"only seq", `subscription($q:String!){ notifications(queue:$q) { seq } }`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := store.CreateQueue(ctx, phone, time.Minute)
			if _, err := store.Subscribe(ctx, allow{}, phone, q.Name, "user:alice/x", "", ""); err != nil {
				t.Fatal(err)
			}
			// A CHANGED event with a payload that needs escaping, then an
			// INVITE (from set, resource null), then an OVERFLOW-free RESYNC,
			// then a RESYNC whose etag nobody knows.
			store.Deliver(&shard.Event{Kind: shard.Changed, Resource: "user:alice/x", Etag: `e"1\`, Time: time.Unix(1700000000, 123456789), Payload: []byte(`{"msg":"h\u00e9\"llo","n":[1,2.5,null]}`)})
			if _, err := store.Invite(ctx, alice, "", "phone", []byte(`"call me"`)); err != nil {
				t.Fatal(err)
			}
			store.Deliver(&shard.Event{Kind: shard.Resync, Resource: "user:alice/x", Etag: "é", Time: time.Unix(1700000001, 0)})
			store.Deliver(&shard.Event{Kind: shard.Resync, EtagUnknown: true, Resource: "user:alice/x", Time: time.Unix(1700000002, 0)})
			pg, err := store.Poll(ctx, phone, q.Name, 0, 10, 0)
			if err != nil || len(pg.Items) != 4 {
				t.Fatalf("poll: %v %d", err, len(pg.Items))
			}

			vars := map[string]any{"q": q.Name}
			for k, v := range tc.vars {
				vars[k] = v
			}
			octx := graph.WithPrincipal(graphql.StartOperationTrace(ctx), phone)
			opCtx, errs := exec.CreateOperationContext(octx, &graphql.RawParams{Query: tc.query, Variables: vars})
			if errs != nil {
				t.Fatal(errs)
			}
			op, ok, err := graph.ParseStreamOp(opCtx)
			if !ok || err != nil || op.Queue != q.Name {
				t.Fatalf("ParseStreamOp: %v %v %+v", ok, err, op)
			}
			sctx, cancel := context.WithCancel(octx)
			defer cancel()
			responses, sctx := exec.DispatchOperation(sctx, opCtx)
			for i, n := range pg.Items {
				resp := responses(sctx)
				if resp == nil || len(resp.Errors) > 0 {
					t.Fatalf("gqlgen response %d: %+v", i, resp)
				}
				var want, got any
				if err := json.Unmarshal(resp.Data, &want); err != nil {
					t.Fatal(err)
				}
				fast := op.Plan.Encode(nil, n)
				var env struct {
					Data json.RawMessage `json:"data"`
				}
				if err := json.Unmarshal(fast, &env); err != nil {
					t.Fatalf("fast path is not JSON: %s", fast)
				}
				if err := json.Unmarshal(env.Data, &got); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("item %d (%s):\nfast   %s\ngqlgen %s", i, n.Kind, env.Data, resp.Data)
				}
				// Encoding is shared: a second queue's copy differs only in seq.
				if again := op.Plan.Encode(nil, n); string(again) != string(fast) {
					t.Fatalf("memoised encoding differs: %s vs %s", again, fast)
				}
			}
		})
	}
}

type allow struct{}

func (allow) Authorize(context.Context, shard.Principal, string, string) (string, error) {
	return "", nil
}

// BenchmarkPlanEncode is the per-subscriber cost of a delivery's bytes once
// the event is encoded: splicing the seq into the shared payload.
func BenchmarkPlanEncode(b *testing.B) {
	store, _ := shard.New(shard.Config{})
	defer store.Close()
	exec := executor.New(graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{Backend: cluster.Single(store)}}))
	p := shard.Principal{User: "u", Device: "d"}
	ctx := graph.WithPrincipal(graphql.StartOperationTrace(context.Background()), p)
	opCtx, errs := exec.CreateOperationContext(ctx, &graphql.RawParams{Query: `subscription { notifications(queue:"q") { seq kind resource etag publishedAt payload } }`})
	if errs != nil {
		b.Fatal(errs)
	}
	op, _, _ := graph.ParseStreamOp(opCtx)
	ev := &shard.Event{Kind: shard.Changed, Resource: "user:u/feed", Etag: "v1", Time: time.Now(), Payload: []byte(`{"x":1}`)}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		seq++
		buf = op.Plan.Encode(buf[:0], shard.Notification{Seq: seq, Event: ev})
	}
}
