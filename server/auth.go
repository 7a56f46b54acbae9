package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"meshgate/shard"
)

// Key is one token-verification key.
type Key struct {
	// ID matches the token header's kid; empty keys match tokens without kid.
	ID string `yaml:"id"`
	// Alg is HS256, EdDSA or RS256.
	Alg string `yaml:"alg"`
	// Secret is the HS256 shared secret (at least 32 bytes); SecretFile
	// reads it from a file instead.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// PublicKeyFile is a PEM public key (PKIX) for EdDSA or RS256.
	PublicKeyFile string `yaml:"public_key_file"`
}

// Claims are the token claims meshgate reads: sub (user), dev (device),
// scope (space-separated string or array), exp (required).
type Claims struct {
	Device string `json:"dev"`
	Scope  any    `json:"scope,omitempty"`
	jwt.RegisteredClaims
}

// Limits on token contents.
const (
	maxTokenLen = 8 << 10
	maxIDLen    = 128
	// DefaultMaxTokenLifetime is how far in the future a token's exp may
	// be: what `meshgate token --ttl` can mint.
	DefaultMaxTokenLifetime = 365 * 24 * time.Hour
)

// ErrBadToken: the token is missing, malformed, expired, or not signed by a known key.
var ErrBadToken = errors.New("server: invalid or missing bearer token")

type verifyKey struct {
	id  string
	alg string
	key any
}

// Authenticator verifies bearer tokens. Safe for concurrent use.
type Authenticator struct {
	keys        []verifyKey
	parser      *jwt.Parser
	now         func() time.Time
	maxLifetime time.Duration

	// verified caches tokens that passed VerifyRequest, until they
	// expire. Bounded by maxVerified; when full, an arbitrary entry goes.
	mu       sync.Mutex
	verified map[string]verifiedToken
}

type verifiedToken struct {
	p   shard.Principal
	exp time.Time
}

// maxVerified bounds the cache of verified tokens (at most about 4 MiB).
const maxVerified = 8192

// NewAuthenticator loads keys, reporting every bad one at once.
func NewAuthenticator(keys []Key, now func() time.Time) (*Authenticator, error) {
	if now == nil {
		now = time.Now
	}
	a := &Authenticator{now: now, maxLifetime: DefaultMaxTokenLifetime}
	var errs []error
	for i, k := range keys {
		vk, err := loadKey(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("auth.keys[%d]: %w", i, err))
			continue
		}
		a.keys = append(a.keys, vk)
	}
	if len(a.keys) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("auth.keys: no verification key"))
	}
	a.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256", "EdDSA", "RS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(now),
		jwt.WithLeeway(5*time.Second),
	)
	return a, errors.Join(errs...)
}

func loadKey(k Key) (verifyKey, error) {
	vk := verifyKey{id: k.ID, alg: k.Alg}
	switch k.Alg {
	case "HS256":
		secret := []byte(k.Secret)
		if k.SecretFile != "" {
			b, err := os.ReadFile(k.SecretFile)
			if err != nil {
				return vk, fmt.Errorf("secret_file: %w", err)
			}
			secret = []byte(strings.TrimSpace(string(b)))
		}
		if len(secret) < 32 {
			return vk, errors.New("HS256 secret must be at least 32 bytes")
		}
		vk.key = secret
	case "EdDSA", "RS256":
		b, err := os.ReadFile(k.PublicKeyFile)
		if err != nil {
			return vk, fmt.Errorf("public_key_file: %w", err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return vk, fmt.Errorf("public_key_file %s: no PEM block", k.PublicKeyFile)
		}
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return vk, fmt.Errorf("public_key_file %s: %w", k.PublicKeyFile, err)
		}
		switch pub.(type) {
		case ed25519.PublicKey:
			if k.Alg != "EdDSA" {
				return vk, fmt.Errorf("public_key_file %s: an Ed25519 key needs alg EdDSA", k.PublicKeyFile)
			}
		case *rsa.PublicKey:
			if k.Alg != "RS256" {
				return vk, fmt.Errorf("public_key_file %s: an RSA key needs alg RS256", k.PublicKeyFile)
			}
		default:
			return vk, fmt.Errorf("public_key_file %s: unsupported key type %T", k.PublicKeyFile, pub)
		}
		vk.key = pub
	default:
		return vk, fmt.Errorf("alg %q: want HS256, EdDSA or RS256", k.Alg)
	}
	return vk, nil
}

// SetMaxLifetime sets how far in the future a token's exp may be (0: the
// default, DefaultMaxTokenLifetime). Call it before Verify is used.
func (a *Authenticator) SetMaxLifetime(d time.Duration) {
	if d <= 0 {
		d = DefaultMaxTokenLifetime
	}
	a.maxLifetime = d
}

// Verify checks a token ("Bearer " prefix optional) and returns its
// principal and expiry. Besides the signature (methods pinned) it
// requires exp as a JSON number no further than the maximum lifetime
// away, and refuses a crit header: meshgate understands no extension
// (RFC 7515 4.1.11).
func (a *Authenticator) Verify(raw string) (shard.Principal, time.Time, error) {
	raw, ok := bearer(raw)
	if !ok {
		return shard.Principal{}, time.Time{}, ErrBadToken
	}
	return a.verify(raw)
}

// VerifyRequest is Verify for requests (HTTP, SSE): a publisher or a
// polling device sends the same token again and again, and parsing it
// (base64, JSON, HMAC) cost 7 % of a publish to ten subscribers and 17 %
// of a long-poll. Verified tokens are remembered until they expire. A
// stream's token is checked once per connection, so streams use Verify:
// caching the tokens of many idle connections would cost memory for no
// gain.
func (a *Authenticator) VerifyRequest(raw string) (shard.Principal, time.Time, error) {
	raw, ok := bearer(raw)
	if !ok {
		return shard.Principal{}, time.Time{}, ErrBadToken
	}
	a.mu.Lock()
	v, ok := a.verified[raw]
	a.mu.Unlock()
	if ok && a.now().Before(v.exp) {
		return v.p, v.exp, nil
	}
	p, exp, err := a.verify(raw)
	if err == nil {
		a.mu.Lock()
		if a.verified == nil {
			a.verified = make(map[string]verifiedToken)
		}
		if len(a.verified) >= maxVerified {
			for k := range a.verified { // an arbitrary one: Go starts map iteration at random
				delete(a.verified, k)
				break
			}
		}
		a.verified[raw] = verifiedToken{p, exp}
		a.mu.Unlock()
	}
	return p, exp, err
}

// bearer strips an optional "Bearer " prefix and checks the length.
func bearer(raw string) (string, bool) {
	raw = strings.TrimSpace(raw)
	if len(raw) > 7 && strings.EqualFold(raw[:7], "bearer ") {
		raw = strings.TrimSpace(raw[7:])
	}
	return raw, raw != "" && len(raw) <= maxTokenLen
}

// verify checks a token without its prefix. A cached answer stays right
// until exp: the keys never change, and a token valid now (nbf and iat
// passed, exp within the lifetime) stays valid until it expires.
func (a *Authenticator) verify(raw string) (shard.Principal, time.Time, error) {
	if err := checkRawClaims(raw); err != nil {
		return shard.Principal{}, time.Time{}, fmt.Errorf("%w: %v", ErrBadToken, err) //nolint:errorlint // ErrBadToken is the contract; the claim check is only text
	}
	var claims Claims
	_, err := a.parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New("crit header: no extension is understood")
		}
		kid, _ := t.Header["kid"].(string)
		for _, k := range a.keys {
			if k.alg == t.Method.Alg() && (k.id == kid || k.id == "") {
				return k.key, nil
			}
		}
		return nil, errors.New("no key for this kid and alg")
	})
	if err != nil {
		return shard.Principal{}, time.Time{}, fmt.Errorf("%w: %v", ErrBadToken, err) //nolint:errorlint // ErrBadToken is the contract; the JWT library's error is only text
	}
	if claims.ExpiresAt.Sub(a.now()) > a.maxLifetime {
		return shard.Principal{}, time.Time{}, fmt.Errorf("%w: exp is more than %s away", ErrBadToken, a.maxLifetime)
	}
	p := shard.Principal{User: claims.Subject, Device: claims.Device}
	if !validID(p.User) || !validID(p.Device) {
		return shard.Principal{}, time.Time{}, fmt.Errorf("%w: sub and dev must be 1-%d bytes of letters, digits and -._@", ErrBadToken, maxIDLen)
	}
	switch s := claims.Scope.(type) {
	case string:
		p.Scopes = strings.Fields(s)
	case []any:
		for _, v := range s {
			if str, ok := v.(string); ok {
				p.Scopes = append(p.Scopes, str)
			}
		}
	}
	return p, claims.ExpiresAt.Time, nil
}

// checkRawClaims requires the claims' exp to be a JSON number: jwt's
// NumericDate also takes a numeric string ("exp":"1700000000"), which RFC
// 7519 does not allow. It runs on the unverified payload; a token it
// refuses is refused anyway.
func checkRawClaims(raw string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return errors.New("not three segments")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return errors.New("claims are not base64url")
	}
	var c struct {
		Exp json.RawMessage `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return errors.New("claims are not a JSON object")
	}
	if len(c.Exp) == 0 || !(c.Exp[0] == '-' || c.Exp[0] >= '0' && c.Exp[0] <= '9') {
		return errors.New("exp must be a number")
	}
	return nil
}

// validID: user and device ids end up in resource paths (user:<id>), so
// they follow the resource segment grammar.
func validID(s string) bool {
	if s == "" || len(s) > maxIDLen || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '@') {
			return false
		}
	}
	return true
}

// DevKeyFile is the development HS256 key's file name in the data directory.
const DevKeyFile = "dev-hs256.key"

// DevKeyID is the kid of tokens minted with the development key.
const DevKeyID = "dev"

// EnsureDevKey returns the development key, creating it (mode 0600) in
// dataDir if absent. created reports whether it was made now.
func EnsureDevKey(dataDir string) (k Key, created bool, err error) {
	path := filepath.Join(dataDir, DevKeyFile)
	k = Key{ID: DevKeyID, Alg: "HS256", SecretFile: path}
	if _, err := os.Stat(path); err == nil {
		return k, false, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return k, false, fmt.Errorf("dev key: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return k, false, fmt.Errorf("dev key: %w", err)
	}
	secret := fmt.Sprintf("%x\n", b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return k, false, nil // another process made it first
	}
	if err != nil {
		return k, false, fmt.Errorf("dev key: %w", err)
	}
	if _, err := f.WriteString(secret); err != nil {
		f.Close()
		return k, false, fmt.Errorf("dev key: %w", err)
	}
	return k, true, f.Close()
}

// Mint signs a token for user and device with an HS256 key.
func Mint(k Key, user, device string, scopes []string, ttl time.Duration, now time.Time) (string, error) {
	if !validID(user) || !validID(device) {
		return "", fmt.Errorf("user and device must be 1-%d bytes of letters, digits and -._@", maxIDLen)
	}
	vk, err := loadKey(k)
	if err != nil {
		return "", err
	}
	if vk.alg != "HS256" {
		return "", errors.New("mint: only HS256 keys can sign here")
	}
	c := Claims{Device: device, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	if len(scopes) > 0 {
		c.Scope = strings.Join(scopes, " ")
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = vk.id
	return t.SignedString(vk.key)
}
