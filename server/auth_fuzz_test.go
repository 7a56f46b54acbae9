package server

import (
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds Verify tokens built from fuzzed header and claims JSON
// (signed with the test key, so they reach the claim checks), and the raw
// fuzzed string itself. It must never panic, and whatever it accepts
// must be a principal of valid ids whose exp is in the future, within
// the maximum lifetime, from a header without crit.
func FuzzVerify(f *testing.F) {
	for _, s := range [][2]string{
		{`{"alg":"HS256","kid":"k1"}`, `{"sub":"alice","dev":"laptop","exp":1800003600}`},
		{`{"alg":"HS256","kid":"k1"}`, `{"sub":"alice","dev":"laptop","exp":"1800003600"}`},
		{`{"alg":"HS256","kid":"k1"}`, `{"sub":"alice","dev":"laptop","exp":1e18}`},
		{`{"alg":"HS256","kid":"k1","crit":["b64"]}`, `{"sub":"alice","dev":"laptop","exp":1800003600}`},
		{`{"alg":"none"}`, `{"sub":"alice","dev":"laptop","exp":1800003600}`},
		{`{"alg":"HS256"}`, `{"sub":"../x","dev":"laptop","exp":1800003600,"scope":["a",1]}`},
		{`{"alg":"HS256"}`, `{"sub":"alice","dev":"laptop","exp":-1}`},
		{`[]`, `null`},
	} {
		f.Add(s[0], s[1])
	}
	now := time.Unix(1_800_000_000, 0)
	a := testAuth(f, now)
	f.Fuzz(func(t *testing.T, header, claims string) {
		for _, tok := range []string{signHS256(header, claims), header, "Bearer " + claims} {
			p, exp, err := a.Verify(tok)
			if err != nil {
				continue
			}
			if !validID(p.User) || !validID(p.Device) || !exp.After(now.Add(-5*time.Second)) || exp.Sub(now) > DefaultMaxTokenLifetime {
				t.Fatalf("accepted %q: %+v exp %v", tok, p, exp)
			}
			if strings.Contains(header, `"crit"`) && tok == signHS256(header, claims) {
				t.Fatalf("accepted a crit header: %s", header)
			}
		}
	})
}
