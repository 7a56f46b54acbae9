package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

// TestCORS_Setting: MESHGATE_CORS_ALLOWED_ORIGINS (and so
// --cors-allowed-origins) fills cors.allowed_origins, and config check
// names an origin that is not one.
func TestCORS_Setting(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	given := settingFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MESHGATE_CORS_ALLOWED_ORIGINS": "http://localhost:3000, localhost:4000"}
	if err := flagsFromEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	cfg, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	given.apply(&cfg)
	if !slices.Equal(cfg.CORS.AllowedOrigins, []string{"http://localhost:3000", "localhost:4000"}) {
		t.Fatalf("%q", cfg.CORS.AllowedOrigins)
	}
	err = cfg.check("")
	if err == nil || !strings.Contains(err.Error(), `flags: cors.allowed_origins[1]: "localhost:4000" is not an origin`) {
		t.Fatalf("check: %v", err)
	}
}
