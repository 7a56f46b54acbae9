package host

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
)

// logWriter routes a plugin's stderr into slog under the plugin's name.
// Every line is logged with the constant message "plugin log" and the
// plugin's content in one group, plugin_log: a JSON line's fields
// (its message as plugin_log.msg) keep their values and set the level;
// another line is plugin_log.line. The invariant: a plugin cannot write
// a line that reads as the gateway's own, nor override a key the
// gateway sets (msg, component, plugin, ...). It never fails, so a
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
		w.log.Info(pluginLogMsg, slog.Group(pluginLogGroup, "line", string(b)))
		return
	}
	level := slog.LevelInfo
	if l, ok := m["level"].(string); ok {
		_ = level.UnmarshalText([]byte(l))
	} else if l, ok := m["@level"].(string); ok {
		_ = level.UnmarshalText([]byte(l))
	}
	attrs := make([]any, 0, 2*len(m))
	for _, k := range []string{"msg", "@message", "message"} {
		if v, ok := m[k]; ok {
			attrs = append(attrs, "msg", v)
			delete(m, k)
			break
		}
	}
	for k, v := range m {
		switch k {
		case "time", "level", "@level", "@timestamp", "msg":
			continue
		}
		attrs = append(attrs, k, v)
	}
	w.log.Log(context.Background(), level, pluginLogMsg, slog.Group(pluginLogGroup, attrs...))
}

const (
	pluginLogMsg   = "plugin log"
	pluginLogGroup = "plugin_log"
)
