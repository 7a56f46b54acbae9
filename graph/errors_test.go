package graph

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"meshgate/shard"
)

// TestCode_UnavailableHidesItsCause: an UNAVAILABLE error's cause names
// nodes, addresses and TLS or gRPC failures (issue 13 item 10: "peer
// certificate not issued by the cluster CA" reached clients). The client
// gets the code and a fixed message; the cause stays in the gateway's log.
func TestCode_UnavailableHidesItsCause(t *testing.T) {
	for _, cause := range []error{
		fmt.Errorf("%w: node n3: connection error: desc = \"transport: authentication handshake failed: peer certificate not issued by the cluster CA\"", shard.ErrUnavailable),
		fmt.Errorf("%w: node n2 is not reachable", shard.ErrUnavailable),
		fmt.Errorf("%w: queue q-secret is moving between nodes; retry", shard.ErrUnavailable),
	} {
		code, msg := Code(cause)
		if code != CodeUnavailable {
			t.Errorf("%v: code %s", cause, code)
		}
		for _, leak := range []string{"n2", "n3", "certificate", "q-secret", "transport"} {
			if strings.Contains(msg, leak) {
				t.Errorf("client message %q carries %q from its cause", msg, leak)
			}
		}
		if !strings.Contains(msg, "retry") {
			t.Errorf("client message %q does not say to retry", msg)
		}
	}
	// The typed errors a client acts on keep their own message.
	if code, msg := Code(fmt.Errorf("%w: too many queues", shard.ErrLimitExceeded)); code != CodeLimitExceeded || !strings.Contains(msg, "too many queues") {
		t.Errorf("LIMIT_EXCEEDED: %s %q", code, msg)
	}
	if code, msg := Code(errors.New("boom: secret detail")); code != CodeInternal || strings.Contains(msg, "secret") {
		t.Errorf("internal: %s %q", code, msg)
	}
}
