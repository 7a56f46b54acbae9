package server

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// TicketPeriod is how long one derived session ticket key encrypts. A
// ticket is accepted in the period it was made in and the next one (and
// the one before, for clocks a little apart), so a session resumes for
// 12 to 24 hours.
const TicketPeriod = 12 * time.Hour

// ShareSessionTickets makes cfg seal TLS session tickets with keys derived
// from secrets (the cluster's gossip keys: the first seals, each one
// opens), so that a device whose node died resumes its TLS session on the
// node it reconnects to, under the same server name, instead of a full
// handshake: the certificate and its signature are skipped (TLS 1.3
// resumption in Go still makes a fresh key exchange, so sessions keep
// forward secrecy). Without it each node seals with keys of its own and
// only a device that comes back to the same process resumes.
//
// The key of a period is HKDF-SHA256(secret, "meshgate tls session
// ticket <period>"), so nodes agree without talking and the key changes
// every TicketPeriod. Whoever holds a gossip key can open tickets, that
// is, resume as a client it copied a ticket from or read the resumption
// secrets of sessions it recorded; that is why the keys are the cluster's
// secret and not a configuration value of their own.
//
// now is the clock (nil: time.Now). Call it before serving.
func ShareSessionTickets(cfg *tls.Config, secrets [][]byte, now func() time.Time) error {
	if len(secrets) == 0 {
		return fmt.Errorf("tls: session tickets: no secret")
	}
	if now == nil {
		now = time.Now
	}
	t := &tickets{secrets: secrets, now: now, aeads: make(map[ticketKey]cipher.AEAD)}
	cfg.WrapSession = t.wrap
	cfg.UnwrapSession = t.unwrap
	return nil
}

// tickets seals and opens session tickets. Safe for concurrent use.
type tickets struct {
	secrets [][]byte
	now     func() time.Time

	mu    sync.Mutex
	aeads map[ticketKey]cipher.AEAD // the periods around now only
}

type ticketKey struct {
	secret int
	period int64
}

// A ticket is: version, secret index, period (8 bytes, big endian), the
// GCM nonce, then the sealed session state; the header is authenticated.
const (
	ticketVersion = 1
	ticketHeader  = 1 + 1 + 8
	ticketNonce   = 12
)

func (t *tickets) period() int64 { return t.now().Unix() / int64(TicketPeriod/time.Second) }

// aead returns the AEAD of secret i in period p, derived once.
func (t *tickets) aead(i int, p int64) (cipher.AEAD, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := ticketKey{i, p}
	if a, ok := t.aeads[k]; ok {
		return a, nil
	}
	key, err := hkdf.Key(sha256.New, t.secrets[i], nil, fmt.Sprintf("meshgate tls session ticket %d", p), 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	cur := t.period()
	for old := range t.aeads {
		if old.period < cur-1 || old.period > cur+1 {
			delete(t.aeads, old)
		}
	}
	t.aeads[k] = a
	return a, nil
}

// wrap is tls.Config.WrapSession: the state sealed with the first
// secret's key of the current period.
func (t *tickets) wrap(_ tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	state, err := ss.Bytes()
	if err != nil {
		return nil, err
	}
	p := t.period()
	a, err := t.aead(0, p)
	if err != nil {
		return nil, err
	}
	var head [ticketHeader + ticketNonce]byte
	head[0], head[1] = ticketVersion, 0
	binary.BigEndian.PutUint64(head[2:ticketHeader], uint64(p)) //nolint:gosec // a period number since 1970, positive
	if _, err := rand.Read(head[ticketHeader:]); err != nil {
		return nil, err
	}
	out := make([]byte, len(head), len(head)+len(state)+a.Overhead())
	copy(out, head[:])
	return a.Seal(out, head[ticketHeader:], state, head[:ticketHeader]), nil
}

// unwrap is tls.Config.UnwrapSession. A ticket it cannot open (another
// cluster's, too old, damaged) is ignored: the client gets a full
// handshake, never an error.
func (t *tickets) unwrap(identity []byte, _ tls.ConnectionState) (*tls.SessionState, error) {
	if len(identity) < ticketHeader+ticketNonce || identity[0] != ticketVersion || int(identity[1]) >= len(t.secrets) {
		return nil, nil
	}
	p := int64(binary.BigEndian.Uint64(identity[2:ticketHeader])) //nolint:gosec // compared with the current period below
	if cur := t.period(); p < cur-1 || p > cur+1 {
		return nil, nil
	}
	a, err := t.aead(int(identity[1]), p)
	if err != nil {
		return nil, nil //nolint:nilerr // a key that cannot be made opens nothing: full handshake
	}
	state, err := a.Open(nil, identity[ticketHeader:ticketHeader+ticketNonce], identity[ticketHeader+ticketNonce:], identity[:ticketHeader])
	if err != nil {
		return nil, nil //nolint:nilerr // not ours or damaged: full handshake
	}
	ss, err := tls.ParseSessionState(state)
	if err != nil {
		return nil, nil //nolint:nilerr // sealed by us but not parseable (another Go version): full handshake
	}
	return ss, nil
}
