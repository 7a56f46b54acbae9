package server

import (
	"encoding/json"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
)

// This file holds the graphql-transport-ws state machine (the graphql-ws
// library's PROTOCOL.md); wslegacy.go holds subscriptions-transport-ws.

// message is a protocol message in either subprotocol.
type message struct {
	ID      *string         `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// handle processes one message; false ends the connection.
func (c *wsConn) handle(data []byte) bool {
	var m message
	if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
		return c.fail(closeBadRequest, "Invalid message received")
	}
	if c.legacy {
		return c.handleLegacy(m)
	}
	switch m.Type {
	case "connection_init":
		return c.handleInit(m.Payload)
	case "ping":
		c.sendJSON(`{"type":"pong"}`)
		return true
	case "pong":
		return true
	case "subscribe":
		if !c.isAcked() {
			return c.fail(closeUnauthorized, "Unauthorized")
		}
		if !c.s.guard.allowRequest(c.user()) {
			return c.fail(closeTooManyRequests, "too many requests")
		}
		if m.ID == nil || *m.ID == "" {
			return c.fail(closeBadRequest, "Invalid message received")
		}
		var params graphql.RawParams
		if rerr := decodeRequest(m.Payload, &params); rerr != nil {
			return c.fail(closeBadRequest, "Invalid message received")
		}
		return c.subscribe(*m.ID, &params)
	case "complete":
		if m.ID == nil {
			return c.fail(closeBadRequest, "Invalid message received")
		}
		c.stopOp(*m.ID)
		return true
	}
	return c.fail(closeBadRequest, fmt.Sprintf("Unexpected message of type %s received", truncate(m.Type, 32)))
}
