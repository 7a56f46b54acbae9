package server

// SetPublishFastPath turns serveHTTP's `publish` fast path on or off, so
// tests can give both paths the same inputs.
func SetPublishFastPath(s *Server, on bool) { s.slowPublish = !on }
