package sdk

import (
	"context"
	"errors"
	"testing"
)

// TestEmit_refusesWhatCannotBeMarshalled: an event with a string that is
// not UTF-8 would fail protobuf's marshal inside Watch and end the stream
// with the events queued behind it; Emit refuses it instead.
func TestEmit_refusesWhatCannotBeMarshalled(t *testing.T) {
	s := newServer(nil)
	ctx := context.Background()
	for _, ev := range []Event{
		{Kind: Revoked, Resource: "storage:folders/hr", Principal: Principal{User: "Zo\xeb"}},
		{Kind: Changed, Resource: "storage:folders/\xff", Etag: "e"},
		{Kind: Changed, Resource: "storage:folders/hr", Etag: "\xfe"},
	} {
		if err := s.emit(ctx, ev); !errors.Is(err, ErrBadEvent) {
			t.Fatalf("%+v: %v, want ErrBadEvent", ev, err)
		}
	}
	if err := s.emit(ctx, Event{Kind: Revoked, Resource: "storage:folders/hr", Principal: Principal{User: "bob"}}); err != nil {
		t.Fatal(err)
	}
	if got := <-s.events; got.GetPrincipal().GetUser() != "bob" || len(s.events) != 0 {
		t.Fatalf("queued %v and %d more", got, len(s.events))
	}
}
