package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// admitRetry is how long a member whose identity could not be verified
// waits before it is tried again.
const admitRetry = 5 * time.Second

// admission is the set of members whose identity this node has verified.
// The invariant: a member other than this node is in the ring only once
// whoever answers at its RPC address has proved, by mutual TLS with the
// cluster CA, that it holds a certificate for the member's name. Gossip
// alone (unauthenticated without gossip keys) admits no one.
type admission struct {
	mu sync.Mutex
	m  map[string]admitState // member name → state
}

type admitState struct {
	rpc      string // the address verified (or being verified)
	ok       bool
	inflight bool
	err      error
	at       time.Time // when the last attempt ended
}

// admitted reports whether member name at rpc may be in the ring, and
// starts its verification if it is due. Never blocks on the network.
func (n *Node) admitted(name, rpc string) bool {
	if name == n.cfg.Name || n.cfg.ClientTLS == nil {
		return true
	}
	a := &n.admit
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.m[name]
	if st.rpc == rpc && (st.ok || st.inflight || time.Since(st.at) < admitRetry) {
		return st.ok
	}
	a.m[name] = admitState{rpc: rpc, inflight: true}
	go func() {
		err := n.verifyPeer(name, rpc)
		a.mu.Lock()
		if cur := a.m[name]; cur.rpc == rpc {
			a.m[name] = admitState{rpc: rpc, ok: err == nil, err: err, at: time.Now()}
		}
		a.mu.Unlock()
		if err != nil {
			n.log.Warn("member refused: its identity is not verified", "node", name, "rpc", rpc, "err", err)
			time.AfterFunc(admitRetry, n.membershipChanged)
			return
		}
		n.membershipChanged() // rebuild the ring with it
	}()
	return false
}

// verifyPeer dials rpc with this node's client TLS configuration (which
// checks the chain against the cluster CA) and checks that the
// certificate names the member.
func (n *Node) verifyPeer(name, rpc string) error {
	cfg := n.cfg.ClientTLS.Clone()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: callTimeout / 2}, "tcp", rpc, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return errors.New("no certificate")
	}
	leaf := certs[0]
	if leaf.VerifyHostname(name) != nil && leaf.Subject.CommonName != name {
		return fmt.Errorf("the certificate at %s is for %q %v, not %q", rpc, leaf.Subject.CommonName, leaf.DNSNames, name)
	}
	return nil
}
