package shard

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

func TestStore_SubscribersWithScheme(t *testing.T) {
	s, _ := newStore(t, Config{})
	alice := Principal{User: "alice", Device: "laptop"}
	bob := Principal{User: "bob", Device: "phone"}
	qa1, qa2, qb := mustQueue(t, s, alice), mustQueue(t, s, alice), mustQueue(t, s, bob)
	mustSub(t, s, alice, qa1, "storage:folders/hr")
	mustSub(t, s, alice, qa2, "storage:folders/hr") // the same principal twice: listed once
	mustSub(t, s, bob, qb, "storage:folders/hr")
	mustSub(t, s, bob, qb, "user:bob/inbox")
	var got []string
	for _, sub := range s.SubscribersWithScheme("storage") {
		got = append(got, fmt.Sprintf("%s %s %s", sub.Resource, sub.User, sub.Device))
	}
	slices.Sort(got)
	want := []string{"storage:folders/hr alice laptop", "storage:folders/hr bob phone"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if n := s.Revoke("storage:folders/hr", "bob", "phone"); n != 1 {
		t.Fatalf("revoked %d", n)
	}
	if l := s.SubscribersWithScheme("storage"); len(l) != 1 || l[0].User != "alice" {
		t.Fatalf("after revoke: %+v", l)
	}
}

// A revocation takes the principal's subscriptions out of both sides (its
// queues and the resource's list), tells each of its queues with one
// REVOKED carrying the last etag, and later publishes no longer reach
// them; the other principal's subscriptions are untouched.
func TestStore_RevokeLeavesBothSides(t *testing.T) {
	s, _ := newStore(t, Config{})
	alice := Principal{User: "alice", Device: "laptop"}
	bob := Principal{User: "bob", Device: "phone"}
	const res = "storage:folders/hr"
	qa, qb1, qb2 := mustQueue(t, s, alice), mustQueue(t, s, bob), mustQueue(t, s, bob)
	for _, sub := range []struct {
		p Principal
		q string
	}{{alice, qa}, {bob, qb1}, {bob, qb2}} {
		mustSub(t, s, sub.p, sub.q, res)
	}
	publish(s, res, "e1")
	if n := s.Revoke(res, "bob", ""); n != 2 {
		t.Fatalf("revoked %d, want 2", n)
	}
	if k, held := s.HasResource(res); !held || k != 1 {
		t.Fatalf("the list holds %d subscribers (held %v), want alice's 1", k, held)
	}
	if n := publish(s, res, "e2"); n != 1 {
		t.Fatalf("a publish after the revocation reached %d queues, want 1", n)
	}
	for _, q := range []string{qb1, qb2} {
		if got := drainAll(t, s, bob, q); !slices.Equal(got, []string{"CHANGED e1", "REVOKED e1"}) {
			t.Errorf("bob's queue holds %q", got)
		}
		if subs, err := s.Subscriptions(context.Background(), bob, q); err != nil || len(subs) != 0 {
			t.Errorf("bob's queue still subscribes: %+v %v", subs, err)
		}
	}
	if got := drainAll(t, s, alice, qa); !slices.Equal(got, []string{"CHANGED e1", "CHANGED e2"}) {
		t.Errorf("alice's queue holds %q", got)
	}
}
