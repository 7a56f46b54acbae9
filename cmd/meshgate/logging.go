package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/term"

	"meshgate/server"
)

// Log formats: --log-format and log_format take one of these; "" is auto.
const (
	logText = "text" // slog's key=value lines, for a person at a terminal
	logJSON = "json" // one JSON object a line, for a log collector
)

// checkLogFormat reports a log format that is neither auto, text nor json.
func checkLogFormat(f string) error {
	switch f {
	case "", "auto", logText, logJSON:
		return nil
	}
	return fmt.Errorf("%q is not auto, text or json", f)
}

// newLogger returns the process's logger, writing to w at level in format:
// text or json, or with "" or "auto" text when w is a terminal and JSON
// otherwise (a pipe, a file, a container's log driver), so a person running
// `meshgate serve` reads lines and a collector still gets objects.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == logText || ((format == "" || format == "auto") && isTerminal(w)) {
		return slog.New(server.LogHandler(slog.NewTextHandler(w, opts)))
	}
	return slog.New(server.LogHandler(slog.NewJSONHandler(w, opts)))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) //nolint:gosec // G115: a file descriptor fits an int
}
