package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"meshgate/graph"
)

// CORSConfig lets web apps served from other origins call /graphql.
type CORSConfig struct {
	// AllowedOrigins are the origins (scheme://host[:port]) whose pages may
	// call /graphql: they get Access-Control-* headers and preflight
	// answers, and their WebSocket upgrades are accepted. "*" allows every
	// origin (with a warning in the log). Empty (the default): no CORS
	// headers at all and WebSocket upgrades are not checked, as before
	// CORS existed. Credentials (cookies) are never allowed: the token
	// travels in Authorization, which needs none.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// MaxAge is how long a browser may cache a preflight answer. Default
	// 10 min (Chromium caps it at 2 h).
	MaxAge time.Duration `yaml:"max_age"`
}

// CORS header values. Allowed headers are what the clients meshgate is
// tested with send: graphql-ws and graphql-sse (Last-Event-ID, and the
// single-connection mode's stream token), Apollo Client (its CSRF
// prevention and client-awareness headers) and urql.
const (
	corsMethods = "GET, POST"
	corsHeaders = "Authorization, Content-Type, Accept, Last-Event-ID, X-Request-Id, " +
		"X-GraphQL-Event-Stream-Token, Apollo-Require-Preflight, X-Apollo-Operation-Name, " +
		"Apollographql-Client-Name, Apollographql-Client-Version"
	// corsExpose are the response headers a page's script may read:
	// Retry-After (503 and 429 answers), the 401 challenge, the request id.
	corsExpose = "Retry-After, WWW-Authenticate, X-Request-Id"
)

// Check reports every origin that is not "*" or scheme://host[:port].
func (c CORSConfig) Check() error {
	var errs []error
	for i, o := range c.AllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("cors.allowed_origins[%d]: %q is not an origin (scheme://host[:port], no path)", i, o))
		}
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("cors.max_age: must be positive, got %s", c.MaxAge))
	}
	return errors.Join(errs...)
}

// cors applies CORSConfig to /graphql requests. It holds no state beyond
// the config: safe for concurrent use.
type cors struct {
	any     bool
	origins map[string]bool // lowercased, no trailing slash
	maxAge  string
}

// newCORS returns nil when no origin is allowed (CORS off).
func newCORS(c CORSConfig) *cors {
	if len(c.AllowedOrigins) == 0 {
		return nil
	}
	if c.MaxAge == 0 {
		c.MaxAge = 10 * time.Minute
	}
	k := &cors{origins: map[string]bool{}, maxAge: strconv.Itoa(int(c.MaxAge / time.Second))}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			k.any = true
		}
		k.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	return k
}

// allowed reports whether a page from origin may call the gateway: listed,
// "*" configured, or the gateway's own origin (GraphiQL, /examples/).
func (k *cors) allowed(r *http.Request, origin string) bool {
	if k.any || k.origins[strings.ToLower(origin)] {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// wrap serves next with CORS on /graphql: a preflight is answered here,
// before authentication or any other work (a browser sends no token with
// it); an actual request from an allowed origin gets Allow-Origin and
// Expose-Headers; a WebSocket upgrade from an origin not allowed is
// refused with 403 (a request with no Origin is not from a browser page
// and is not checked). Other paths are untouched.
func (k *cors) wrap(next http.Handler) http.Handler {
	if k == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/graphql" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		ok := origin != "" && k.allowed(r, origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !ok {
				writeRequestError(w, mediaJSON, &requestError{http.StatusForbidden, graph.CodeForbidden, "this origin may not call the gateway (cors.allowed_origins)"})
				return
			}
			k.allowOrigin(h, origin)
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", k.maxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if isWebSocket(r) && origin != "" && !ok {
			writeRequestError(w, mediaJSON, &requestError{http.StatusForbidden, graph.CodeForbidden, "this origin may not open a WebSocket to the gateway (cors.allowed_origins)"})
			return
		}
		if ok {
			k.allowOrigin(h, origin)
			h.Set("Access-Control-Expose-Headers", corsExpose)
		}
		next.ServeHTTP(w, r)
	})
}

func (k *cors) allowOrigin(h http.Header, origin string) {
	if k.any {
		h.Set("Access-Control-Allow-Origin", "*")
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
}
