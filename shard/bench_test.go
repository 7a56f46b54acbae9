package shard

import (
	"context"
	"fmt"
	"testing"
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
