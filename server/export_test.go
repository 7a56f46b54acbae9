package server

// WSClosing counts the WebSocket connections that have queued their close
// frame: tests wait on it instead of sleeping.
func WSClosing(s *Server) int {
	s.wheel.mu.Lock()
	defer s.wheel.mu.Unlock()
	n := 0
	for t := range s.wheel.conns {
		if c, ok := t.(*wsConn); ok {
			c.mu.Lock()
			if c.closing {
				n++
			}
			c.mu.Unlock()
		}
	}
	return n
}

// SetPublishFastPath turns serveHTTP's `publish` fast path on or off, so
// tests can give both paths the same inputs.
func SetPublishFastPath(s *Server, on bool) { s.slowPublish = !on }

// SetPollFastPath turns serveHTTP's `notifications` query fast path on or
// off, so tests can give both paths the same inputs.
func SetPollFastPath(s *Server, on bool) { s.slowPoll = !on }

// SetSetupFastPath turns createQueue's and subscribe's fast path (HTTP
// and WebSocket) on or off.
func SetSetupFastPath(s *Server, on bool) { s.slowSetup = !on }

// PlannedAnswers counts the requests s has answered from a `publish`
// plan (answerPlanned), so tests know which path answered.
func PlannedAnswers(s *Server) int64 { return s.plans.answered.Load() }

// WSParked is how many WebSockets are parked on the server's poller,
// holding no reader goroutine; -1 if the server has no poller.
func WSParked(s *Server) int {
	if s.poller == nil {
		return -1
	}
	return s.poller.Waiting()
}

// WSConns is how many WebSocket connections the server holds.
func WSConns(s *Server) int { return s.wheel.countByKind().ws }
