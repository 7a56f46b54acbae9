package server

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil)))
	h := withRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "handled")
	}))
	for _, tc := range []struct{ sent, want string }{
		{"abc-123", "abc-123"},
		{"", ""},                      // made up
		{"has space", ""},             // replaced
		{strings.Repeat("x", 65), ""}, // too long: replaced
	} {
		buf.Reset()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		if tc.sent != "" {
			req.Header.Set("X-Request-Id", tc.sent)
		}
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if tc.want != "" && got != tc.want || tc.want == "" && (len(got) != 16 || got == tc.sent) {
			t.Errorf("sent %q, got %q", tc.sent, got)
		}
		if !strings.Contains(buf.String(), `"request_id":"`+got+`"`) {
			t.Errorf("log line lacks the request id: %s", buf.String())
		}
	}
	log.InfoContext(context.Background(), "no request")
	if strings.Contains(buf.String()[strings.LastIndex(buf.String(), "no request"):], "request_id") {
		t.Error("a line without a request got a request_id")
	}
}
