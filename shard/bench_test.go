package shard

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkQueueAppend measures one append to one queue with a stream
// attached that keeps up (the steady state of a live device).
func BenchmarkQueueAppend(b *testing.B) {
	s, _ := newStore(b, Config{})
	q := mustQueue(b, s, alice)
	mustSub(b, s, alice, q, "user:alice/a")
	st, _ := s.Attach(context.Background(), alice, q, 0, &countListener{})
	ev := &Event{Kind: Changed, Resource: "user:alice/a", Etag: "e", Payload: []byte(`{}`)}
	var buf []Notification
	b.ReportAllocs()
	for b.Loop() {
		s.Deliver(ev)
		buf, _ = st.Next(buf[:0], 8)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkFanout10k measures one publish appended to 10 000 subscribed
// queues, each with a listener (as a WebSocket would have).
func BenchmarkFanout10k(b *testing.B) {
	const n = 10000
	s, _ := newStore(b, Config{MaxQueuesPerDevice: n})
	l := &countListener{}
	for i := range n {
		p := Principal{User: "u", Device: fmt.Sprint("d", i)}
		q := mustQueue(b, s, p)
		mustSub(b, s, p, q, "user:u/feed")
		if _, err := s.Attach(context.Background(), p, q, 0, l); err != nil {
			b.Fatal(err)
		}
	}
	ev := &Event{Kind: Changed, Resource: "user:u/feed", Etag: "e", Payload: []byte(`{"x":1}`)}
	b.ReportAllocs()
	for b.Loop() {
		if s.Deliver(ev) != n {
			b.Fatal("short fan-out")
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
}

// BenchmarkScenarioD is issue 7's scenario D, in process: 100 000 queues
// with 10 subscriptions each (1 000 000 entries over 100 000 resources).
// It reports the subscribe rate and the heap held per subscription entry,
// both sides of the table included (queue → resources and resource →
// queues), measured after a GC. Run it with -benchtime 1x.
func BenchmarkScenarioD(b *testing.B) {
	const queues, perQueue, resources = 100_000, 10, 100_000
	for b.Loop() {
		s, _ := newStore(b, Config{})
		ctx := context.Background()
		names := make([]string, queues)
		res := make([]string, resources)
		for i := range res {
			res[i] = fmt.Sprintf("user:u%d/r%d", i%1000, i)
		}
		for i := range names {
			q, err := s.CreateQueue(ctx, Principal{User: "u", Device: fmt.Sprint("d", i)}, 0)
			if err != nil {
				b.Fatal(err)
			}
			names[i] = q.Name
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		auth := allowAll{"etag-1"}
		for i, q := range names {
			p := Principal{User: "u", Device: fmt.Sprint("d", i)}
			for j := range perQueue {
				if _, err := s.Subscribe(ctx, auth, p, q, res[(i*7+j*13)%resources], "", ""); err != nil {
					b.Fatal(err)
				}
			}
		}
		elapsed := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if st := s.Stats(); st.Subscriptions != queues*perQueue {
			b.Fatalf("stats %+v", st)
		}
		entries := float64(queues * perQueue)
		b.ReportMetric(entries/elapsed.Seconds(), "subscribes/s")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/entries, "B/subscription")
		runtime.KeepAlive(names)
		runtime.KeepAlive(res)
	}
}
