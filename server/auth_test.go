package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var testSecret = strings.Repeat("k", 32)

// signHS256 builds a token from raw header and claims JSON, so tests can
// send what no JWT library would produce.
func signHS256(header, claims string) string {
	enc := base64.RawURLEncoding
	msg := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(m.Sum(nil))
}

func testAuth(t testing.TB, now time.Time) *Authenticator {
	t.Helper()
	a, err := NewAuthenticator([]Key{{ID: "k1", Alg: "HS256", Secret: testSecret}}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestVerify_claimsAndHeaders(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := testAuth(t, now)
	a.SetMaxLifetime(48 * time.Hour)
	hdr := `{"alg":"HS256","typ":"JWT","kid":"k1"}`
	exp := now.Add(time.Hour).Unix()
	claims := func(expJSON string) string {
		return fmt.Sprintf(`{"sub":"alice","dev":"laptop","exp":%s}`, expJSON)
	}
	for _, tc := range []struct {
		name, header, claims string
		ok                   bool
	}{
		{"valid", hdr, claims(fmt.Sprint(exp)), true},
		{"fractional exp is a number", hdr, claims(fmt.Sprint(exp) + ".5"), true},
		{"exp as a numeric string", hdr, claims(fmt.Sprintf(`"%d"`, exp)), false},
		{"exp 1e18: past the maximum lifetime", hdr, claims("1e18"), false},
		{"exp a week away: past 48 h", hdr, claims(fmt.Sprint(now.Add(7 * 24 * time.Hour).Unix())), false},
		{"exp null", hdr, claims("null"), false},
		{"exp an object", hdr, claims(`{"a":1}`), false},
		{"no exp", hdr, `{"sub":"alice","dev":"laptop"}`, false},
		{"crit header", `{"alg":"HS256","kid":"k1","crit":["exp"]}`, claims(fmt.Sprint(exp)), false},
		{"crit header, empty", `{"alg":"HS256","kid":"k1","crit":[]}`, claims(fmt.Sprint(exp)), false},
		{"alg none", `{"alg":"none","kid":"k1"}`, claims(fmt.Sprint(exp)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, err := a.Verify(signHS256(tc.header, tc.claims))
			if tc.ok && (err != nil || p.User != "alice") {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrBadToken) {
				t.Fatalf("accepted (%+v, %v)", p, err)
			}
		})
	}
}
