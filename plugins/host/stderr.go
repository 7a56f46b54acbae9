package host

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
)

// logWriter routes a plugin's stderr into slog under the plugin's name:
// JSON lines keep their level, message and attributes (whatever their
// types); other lines are logged as they are. It never fails, so a
// plugin's output cannot break the host.
type logWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

const maxLogLine = 16 << 10

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > maxLogLine {
				w.line(w.buf)
				w.buf = w.buf[:0]
			}
			return len(p), nil
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *logWriter) line(b []byte) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return
	}
	var m map[string]any
	if b[0] != '{' || json.Unmarshal(b, &m) != nil {
		w.log.Info(string(b))
		return
	}
	level := slog.LevelInfo
	if l, ok := m["level"].(string); ok {
		_ = level.UnmarshalText([]byte(l))
	} else if l, ok := m["@level"].(string); ok {
		_ = level.UnmarshalText([]byte(l))
	}
	msg := "plugin log"
	for _, k := range []string{"msg", "@message", "message"} {
		if v, ok := m[k]; ok {
			if s, ok := v.(string); ok {
				msg = s
			} else {
				j, _ := json.Marshal(v)
				msg = string(j)
			}
			delete(m, k)
			break
		}
	}
	attrs := make([]any, 0, 2*len(m))
	for k, v := range m {
		switch k {
		case "time", "level", "@level", "@timestamp":
			continue
		}
		attrs = append(attrs, k, v)
	}
	w.log.Log(context.Background(), level, msg, attrs...)
}
