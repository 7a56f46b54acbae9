package graph

import (
	"context"
	"time"

	"meshgate/graph/model"
	"meshgate/shard"
)

func queueModel(q shard.QueueInfo) *model.Queue {
	return &model.Queue{
		Name:              q.Name,
		CreatedAt:         q.CreatedAt.UTC(),
		ExpiresAt:         q.ExpiresAt.UTC(),
		TTLSeconds:        int(q.TTL / time.Second),
		Depth:             q.Depth,
		LastSeq:           model.Seq(q.LastSeq),
		SubscriptionCount: q.SubscriptionCount,
	}
}

func subscriptionModel(s shard.SubscriptionInfo) *model.ResourceSubscription {
	return &model.ResourceSubscription{Queue: s.Queue, Resource: s.Resource, Etag: s.Etag, EtagUnknown: s.EtagUnknown, CreatedAt: s.CreatedAt.UTC()}
}

// notificationModel converts for gqlgen's executor. Streaming transports do
// not use it: they encode with Plan.
func notificationModel(n shard.Notification) *model.Notification {
	m := &model.Notification{
		Seq:         model.Seq(n.Seq),
		Kind:        model.NotificationKind(n.Kind.String()),
		EtagUnknown: n.EtagUnknown,
		PublishedAt: n.Time.UTC(),
		Payload:     model.JSON(n.Payload),
	}
	if n.Resource != "" {
		r, e := n.Resource, n.Etag
		m.Resource, m.Etag = &r, &e
	}
	if n.From != nil {
		m.From = &model.Principal{User: n.From.User, Device: n.From.Device, Scopes: []string{}}
	}
	return m
}

// chanListener wakes one goroutine through a 1-slot channel.
type chanListener struct{ ch chan struct{} }

func (l *chanListener) Notify() {
	select {
	case l.ch <- struct{}{}:
	default:
	}
}

// pump feeds a gqlgen subscription from a stream. This is the slow path,
// used only when gqlgen itself executes the subscription; the WebSocket
// and SSE transports bypass it.
func pump(ctx context.Context, st shard.Reader, l *chanListener, out chan<- *model.Notification) {
	defer close(out)
	defer st.Close()
	var buf []shard.Notification
	for {
		var err error
		buf, err = st.Next(buf[:0], 64)
		for _, n := range buf {
			select {
			case out <- notificationModel(n):
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			return
		}
		if len(buf) > 0 {
			continue
		}
		select {
		case <-l.ch:
		case <-ctx.Done():
			return
		}
	}
}
