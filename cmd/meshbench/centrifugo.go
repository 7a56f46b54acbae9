package main

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
)

// Centrifugo's side of the benchmark (bench/centrifugo.json): its client
// protocol 2 in JSON over WebSocket, and its HTTP API for publishing.
// These constants must match the configuration file.
const (
	centrifugoSecret  = "meshbench-hmac-secret-not-for-production"
	centrifugoAPIKey  = "meshbench-api-key"
	centrifugoChannel = "feed"
)

// centrifugoToken is a connection JWT for user sub, signed as Centrifugo
// verifies it (client.token.hmac_secret_key).
func centrifugoToken(sub string) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub,
		"exp": time.Now().Add(24 * time.Hour).Unix(),
	}).SignedString([]byte(centrifugoSecret))
}

// centrifugoHello connects s (a connect command with its token) and
// subscribes it to the channel, waiting for both replies.
func (b *bencher) centrifugoHello(s *sub) error {
	tok, err := centrifugoToken(fmt.Sprint("d", s.idx))
	if err != nil {
		return err
	}
	if err := s.send(map[string]any{"id": 1, "connect": map[string]any{"token": tok, "name": "meshbench"}}); err != nil {
		return err
	}
	if err := s.centrifugoReply(1); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if err := s.send(map[string]any{"id": 2, "subscribe": map[string]any{"channel": centrifugoChannel}}); err != nil {
		return err
	}
	if err := s.centrifugoReply(2); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	return nil
}

// centrifugoReply waits for the reply to command id, answering pings.
func (s *sub) centrifugoReply(id int) error {
	want := []byte(fmt.Sprintf(`"id":%d`, id))
	for {
		p, err := s.readMessage()
		if err != nil {
			return err
		}
		for line := range bytes.SplitSeq(p, []byte("\n")) {
			if !bytes.Contains(line, want) {
				if err := s.centrifugoPing(line); err != nil {
					return err
				}
				continue
			}
			if bytes.Contains(line, []byte(`"error"`)) {
				return errors.New(string(line))
			}
			return nil
		}
	}
}

// centrifugoPing answers a server ping (an empty object) with a pong.
func (s *sub) centrifugoPing(line []byte) error {
	if string(bytes.TrimSpace(line)) != "{}" {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return ws.WriteFrame(s.conn, ws.MaskFrame(ws.NewTextFrame([]byte("{}"))))
}

// centrifugoMessages handles one frame: Centrifugo puts several replies
// and pushes in one frame, one JSON object a line.
func (s *sub) centrifugoMessages(p []byte, now int64) error {
	for line := range bytes.SplitSeq(p, []byte("\n")) {
		if i, t, ok := parseEvent(line); ok {
			s.record(i, t, now)
			continue
		}
		if err := s.centrifugoPing(line); err != nil {
			return err
		}
	}
	return nil
}
