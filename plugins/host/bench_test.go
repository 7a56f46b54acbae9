package host_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"meshgate/plugins/host"
	"meshgate/shard"
)

// BenchmarkPluginEvents measures plugin event → delivered notification:
// a plugin process emits events on its Watch stream as fast as it can; the
// host validates each and appends it to a subscribed queue with a stream
// attached. The figure is events per second end to end (gRPC with mTLS
// included).
func BenchmarkPluginEvents(b *testing.B) {
	self, _ := os.Executable()
	h, err := host.New(host.Config{Plugins: []host.Plugin{{
		Name: "burst", Path: self, Args: []string{"-test.run=^$"}, SHA256: sha256File(b, self), Env: map[string]string{"MESHGATE_TEST_PLUGIN": "burst"},
	}}, CallTimeout: time.Hour}, nil)
	if err != nil {
		b.Fatal(err)
	}
	store, _ := shard.New(shard.Config{BufferSize: 1 << 20, RetainDelivered: 1})
	defer store.Close()
	h.SetSink(store)
	h.Start(context.Background())
	defer h.Close()
	p := shard.Principal{User: "u", Device: "d"}
	q, _ := store.CreateQueue(context.Background(), p, 0)
	if _, err := store.Subscribe(context.Background(), h, p, q.Name, "burst:x", "", ""); err != nil {
		b.Fatal(err)
	}
	st, _ := store.Attach(context.Background(), p, q.Name, 0, nopListener{})
	defer st.Close()
	b.ResetTimer()
	if _, err := h.Publish(context.Background(), p, "burst:x", "", []byte(fmt.Sprintf(`{"n":%d}`, b.N))); err != nil {
		b.Fatal(err)
	}
	var got int
	buf := make([]shard.Notification, 0, 4096)
	for got < b.N {
		buf, _ = st.Next(buf[:0], 4096)
		got += len(buf)
		if len(buf) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
