package server_test

import (
	"bufio"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func urlq(s string) string { return url.QueryEscape(s) }

func newReq(method, u string, body io.Reader) (*http.Request, error) {
	return http.NewRequest(method, u, body)
}

type sseReader struct{ r *bufio.Reader }

func newSSEReader(r io.Reader) *sseReader { return &sseReader{bufio.NewReader(r)} }

// next returns the next event's name and data, skipping comments.
func (s *sseReader) next(t testing.TB) (name, data string) {
	t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("sse read: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if name != "" {
				return name, data
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(line[6:])
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(line[5:], " ")
		}
	}
}
