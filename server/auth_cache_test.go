package server_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"meshgate/server"
)

// TestAuthenticator_CachedAnswersAsTheParser: a token verified once is
// answered from the cache with the same principal and expiry, and the
// cache never accepts what the parser would refuse: an expired token, a
// changed byte, a key the authenticator does not have.
func TestAuthenticator_CachedAnswersAsTheParser(t *testing.T) {
	dir := t.TempDir()
	key, _, err := server.EnsureDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	auth, err := server.NewAuthenticator([]server.Key{key}, clock)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := server.Mint(key, "alice", "laptop", []string{"publish"}, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // the first parses, the others hit the cache
		p, exp, err := auth.VerifyRequest("Bearer " + tok)
		if err != nil || p.User != "alice" || p.Device != "laptop" || !slices.Equal(p.Scopes, []string{"publish"}) || !exp.Equal(now.Add(time.Minute)) {
			t.Fatalf("verify %d: %+v %v %v", i, p, exp, err)
		}
	}
	bad := tok[:len(tok)-2] + "xx"
	if _, _, err := auth.VerifyRequest(bad); !errors.Is(err, server.ErrBadToken) {
		t.Fatalf("changed signature: %v", err)
	}
	other, _, _ := server.EnsureDevKey(t.TempDir())
	foreign, _ := server.Mint(other, "alice", "laptop", nil, time.Minute, now)
	if _, _, err := auth.VerifyRequest(foreign); !errors.Is(err, server.ErrBadToken) {
		t.Fatalf("another key's token: %v", err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute) // past exp and the parser's leeway
	mu.Unlock()
	if _, _, err := auth.VerifyRequest(tok); !errors.Is(err, server.ErrBadToken) {
		t.Fatalf("expired token answered from the cache: %v", err)
	}
}

// TestAuthenticator_FullCacheStillAnswersRight verifies more distinct
// tokens than the cache holds, twice each: every answer names the token's
// own device, whether it came from the cache or the parser.
func TestAuthenticator_FullCacheStillAnswersRight(t *testing.T) {
	key, _, err := server.EnsureDevKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	auth, err := server.NewAuthenticator([]server.Key{key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	toks := make([]string, 9000)
	for i := range toks {
		if toks[i], err = server.Mint(key, "alice", fmt.Sprint("d", i), nil, time.Hour, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 2 {
		for i, tok := range toks {
			p, _, err := auth.VerifyRequest(tok)
			if err != nil || p.Device != fmt.Sprint("d", i) {
				t.Fatalf("round %d, token %d: %+v %v", round, i, p, err)
			}
		}
	}
}
