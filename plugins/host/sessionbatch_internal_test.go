package host

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	pb "meshgate/plugins/proto"
)

// hostStream records what the host sends on a plugin's Host stream.
type hostStream struct {
	pb.Publisher_HostClient // only Send is used

	mu   sync.Mutex
	msgs []*pb.HostMessage
}

func (s *hostStream) Send(m *pb.HostMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	return nil
}

// events returns the session events sent so far, in order, and how many
// messages carried them.
func (s *hostStream) events() (evs []string, msgs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		for _, ev := range m.GetSessions().GetEvents() {
			evs = append(evs, fmt.Sprint(ev.GetPrincipal().GetDevice(), ev.GetOnline()))
		}
	}
	return evs, len(s.msgs)
}

// TestSessionBatch_InOrderFewMessages: events added faster than
// SessionInterval reach the plugin all, in order, in a few messages; a
// full batch goes out at once on the caller's goroutine.
func TestSessionBatch_InOrderFewMessages(t *testing.T) {
	for _, n := range []int{1, 1000, 3*maxSessionBatch + 7} {
		t.Run(fmt.Sprint(n, " events"), func(t *testing.T) {
			st := &hostStream{}
			inst := &instance{host: st, batch: newSessionBatch()}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { inst.batch.report(ctx, inst); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			var want []string
			start := time.Now()
			for i := range n {
				online := i%3 != 2
				inst.sendSession(&pb.SessionEvent{Principal: &pb.Principal{User: "u", Device: fmt.Sprint("d", i)}, Online: online})
				want = append(want, fmt.Sprint(fmt.Sprint("d", i), online))
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				got, msgs := st.events()
				if len(got) == n {
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("event %d: %s, want %s", i, got[i], want[i])
						}
					}
					// At most one message per interval since the first
					// event, one per full batch, and the first.
					if limit := int(time.Since(start)/SessionInterval) + n/maxSessionBatch + 2; msgs > limit {
						t.Fatalf("%d events in %d messages, want at most %d", n, msgs, limit)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d events sent", len(got), n)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}
