package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"meshgate/server"
	"meshgate/shard"
)

// TestRefusals_ChallengeAndCode: every HTTP entry point answers a missing
// or bad token with 401, the RFC 6750 challenge and UNAUTHENTICATED, and
// the admin ones answer a token without the admin scope with 403 FORBIDDEN.
func TestRefusals_ChallengeAndCode(t *testing.T) {
	g := start(t, server.Config{}, shard.Config{})
	base := strings.TrimSuffix(g.url, "/graphql")
	user, admin := g.token("alice", "laptop"), g.token("ops", "b", "admin")
	for _, tc := range []struct {
		name, method, path, accept, tok string
		status                          int
		code                            string
	}{
		{"graphql without token", "GET", "/graphql?query=%7Bme%7Buser%7D%7D", "application/json", "", 401, "UNAUTHENTICATED"},
		{"graphql bad token", "GET", "/graphql?query=%7Bme%7Buser%7D%7D", "application/json", "nonsense", 401, "UNAUTHENTICATED"},
		{"sse without token", "GET", "/graphql?query=subscription%7Bx%7D", "text/event-stream", "", 401, "UNAUTHENTICATED"},
		{"metrics without token", "GET", "/metrics", "", "", 401, "UNAUTHENTICATED"},
		{"metrics without admin", "GET", "/metrics", "", user, 403, "FORBIDDEN"},
		{"status without token", "GET", "/status.json", "", "", 401, "UNAUTHENTICATED"},
		{"status without admin", "GET", "/status.json", "", user, 403, "FORBIDDEN"},
		{"status as admin", "GET", "/status.json", "", admin, 200, ""},
		{"metrics as admin", "GET", "/metrics", "", admin, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, nil)
			if tc.tok != "" {
				req.Header.Set("Authorization", "Bearer "+tc.tok)
			}
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := g.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if challenge := resp.Header.Get("WWW-Authenticate"); (tc.status == 401) != (challenge == `Bearer realm="meshgate"`) {
				t.Errorf("WWW-Authenticate %q with status %d", challenge, tc.status)
			}
			if tc.code == "" {
				return
			}
			var body struct {
				Errors []struct{ Extensions map[string]any }
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Errors) != 1 || body.Errors[0].Extensions["code"] != tc.code {
				t.Fatalf("body %+v (%v), want code %s", body, err, tc.code)
			}
		})
	}
}
