package server

import (
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// This file holds the legacy subscriptions-transport-ws state machine
// (subprotocol "graphql-ws", Apollo's old protocol).

// handleLegacy speaks subscriptions-transport-ws.
func (c *wsConn) handleLegacy(m message) bool {
	switch m.Type {
	case "connection_init":
		return c.handleInit(m.Payload)
	case "start":
		if c.isAcked() && !c.s.guard.allowRequest(c.user()) {
			return c.fail(closeTooManyRequests, "too many requests")
		}
		if !c.isAcked() {
			c.sendJSON(`{"type":"connection_error","payload":{"message":"send connection_init first"}}`)
			return c.fail(closeUnauthorized, "Unauthorized")
		}
		if m.ID == nil || *m.ID == "" {
			return c.fail(closeBadRequest, "Invalid message received")
		}
		var params graphql.RawParams
		if rerr := decodeRequest(m.Payload, &params); rerr != nil {
			c.sendOpErrors(*m.ID, marshalErrorList(gqlerror.List{{Message: rerr.msg, Extensions: map[string]any{"code": rerr.code}}}))
			return true
		}
		return c.subscribe(*m.ID, &params)
	case "stop":
		if m.ID != nil {
			c.stopOp(*m.ID)
		}
		return true
	case "connection_terminate":
		c.closeWith(closeNormal, "")
		return false
	}
	return c.fail(closeBadRequest, fmt.Sprintf("Unexpected message of type %s received", truncate(m.Type, 32)))
}
