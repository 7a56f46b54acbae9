package server

import (
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"meshgate/graph"
)

// TestRetryable: a result carrying an UNAVAILABLE error gets Retry-After
// (README, "Error codes"); other errors, and no errors, do not.
func TestRetryable(t *testing.T) {
	withCode := func(code string) *graphql.Response {
		return &graphql.Response{Errors: gqlerror.List{{Message: "x", Extensions: map[string]any{"code": code}}}}
	}
	for _, tc := range []struct {
		name string
		resp *graphql.Response
		want bool
	}{
		{"no errors", &graphql.Response{}, false},
		{"unavailable", withCode(graph.CodeUnavailable), true},
		{"bad input", withCode(graph.CodeBadUserInput), false},
		{"queue not found", withCode(graph.CodeQueueNotFound), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryable(tc.resp); got != tc.want {
				t.Errorf("retryable = %v, want %v", got, tc.want)
			}
		})
	}
}
