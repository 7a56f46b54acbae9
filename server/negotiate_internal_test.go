package server

import "testing"

// TestNegotiate checks Accept handling against RFC 9110 section 12.5.1:
// "a value of 0 means 'not acceptable'", the most specific matching range
// gives an offer its weight, the highest weight wins, and ties go to the
// order the client listed them in.
func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		name, accept string
		offers       []offer
		want         string
	}{
		{"no Accept is JSON", "", allOffers, mediaJSON},
		{"*/* is JSON", "*/*", allOffers, mediaJSON},
		{"q=0 excludes", "application/json, text/event-stream;q=0", allOffers, mediaJSON},
		{"q=0 excludes even first", "text/event-stream;q=0, application/json", allOffers, mediaJSON},
		{"highest q wins", "application/json;q=0.5, text/event-stream", allOffers, mediaEventStream},
		{"tie goes to client order", "text/event-stream, application/json", allOffers, mediaEventStream},
		{"tie goes to client order, JSON first", "application/json, text/event-stream", allOffers, mediaJSON},
		{"urql's default for queries", "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed", allOffers, mediaGraphQLResponse},
		{"urql's default for subscriptions", "text/event-stream, multipart/mixed", allOffers, mediaEventStream},
		{"Apollo's subscription Accept", "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9", allOffers, mediaMultipart},
		{"Apollo's quoted spec", `multipart/mixed;subscriptionSpec="1.0", application/json`, allOffers, mediaMultipart},
		{"bare multipart is not Apollo's", "multipart/mixed", allOffers, ""},
		{"a more specific range overrides a wildcard", "*/*, application/json;q=0", jsonOffers, mediaGraphQLResponse},
		{"type wildcard", "text/*", allOffers, mediaEventStream},
		{"nothing acceptable", "image/png", jsonOffers, ""},
		{"everything excluded", "*/*;q=0", allOffers, ""},
		{"bad q is skipped", "text/event-stream;q=2, application/json", allOffers, mediaJSON},
		{"graphql-response+json by weight", "application/json;q=0.9, application/graphql-response+json", jsonOffers, mediaGraphQLResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := negotiate(tc.accept, tc.offers...)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("negotiate(%q) = %q, %v; want %q", tc.accept, got, ok, tc.want)
			}
		})
	}
}
