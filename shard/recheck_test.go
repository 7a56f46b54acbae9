package shard

import (
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
