package shard

import (
	"fmt"
	"strings"
)

// Resource string limits. A resource is `scheme:path`:
//
//	scheme = lower *31( lower / digit / "-" )          ; 1–32 bytes
//	path   = segment *( "/" segment )                 ; 1–MaxResourceLen bytes
//	segment = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "@" / "+" / "=" / "," / ":" )
//
// A segment may not be "." or "..". The whole string is at most
// MaxResourceLen bytes. Parsing never allocates; the resource string itself
// is the key everywhere.
const (
	MaxResourceLen = 256
	MaxSchemeLen   = 32
	MaxEtagLen     = 256
)

// ParseResource checks r against the grammar and returns its scheme and path.
func ParseResource(r string) (scheme, path string, err error) {
	if len(r) > MaxResourceLen {
		return "", "", fmt.Errorf("%w: resource longer than %d bytes", ErrInvalidInput, MaxResourceLen)
	}
	scheme, path, ok := strings.Cut(r, ":")
	if !ok {
		return "", "", fmt.Errorf("%w: resource %q is not scheme:path", ErrInvalidInput, r)
	}
	badScheme := len(scheme) == 0 || len(scheme) > MaxSchemeLen
	for i := 0; i < len(scheme) && !badScheme; i++ {
		c := scheme[i]
		badScheme = !isLower(c) && (i == 0 || !isDigit(c) && c != '-')
	}
	if badScheme {
		return "", "", fmt.Errorf("%w: resource scheme must be 1-%d bytes of a-z, 0-9 and -, starting with a letter", ErrInvalidInput, MaxSchemeLen)
	}
	if path == "" {
		return "", "", fmt.Errorf("%w: resource path is empty", ErrInvalidInput)
	}
	at := len(scheme) + 1 // where seg starts in r
	for seg := range strings.SplitSeq(path, "/") {
		for i := 0; i < len(seg); i++ {
			if !isPathByte(seg[i]) {
				return "", "", fmt.Errorf("%w: resource path has a forbidden byte %q at %d", ErrInvalidInput, seg[i], at+i)
			}
		}
		switch seg {
		case "":
			return "", "", fmt.Errorf("%w: resource path has an empty segment", ErrInvalidInput)
		case ".", "..":
			return "", "", fmt.Errorf("%w: resource path has a %q segment", ErrInvalidInput, seg)
		}
		at += len(seg) + 1
	}
	return scheme, path, nil
}

// ValidEtag checks an etag: 0–MaxEtagLen printable ASCII bytes.
func ValidEtag(e string) error {
	if len(e) > MaxEtagLen {
		return fmt.Errorf("%w: etag longer than %d bytes", ErrInvalidInput, MaxEtagLen)
	}
	for i := 0; i < len(e); i++ {
		if e[i] < 0x20 || e[i] > 0x7e {
			return fmt.Errorf("%w: etag must be printable ASCII", ErrInvalidInput)
		}
	}
	return nil
}

// hasScheme reports, for a table's values, whether a resource is of scheme.
func hasScheme(scheme string) func(res string) bool {
	prefix := scheme + ":"
	return func(res string) bool { return len(res) > len(prefix) && res[:len(prefix)] == prefix }
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isPathByte(c byte) bool {
	return isLower(c) || isDigit(c) || c >= 'A' && c <= 'Z' || strings.IndexByte("-._~@+=,:", c) >= 0
}
