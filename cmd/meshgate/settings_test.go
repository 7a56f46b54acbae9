package main

import (
	"flag"
	"io"
	"slices"
	"testing"
)

// TestSettings_OverrideTheFile: a setting given as a flag or as
// MESHGATE_<FLAG> replaces the file's value; one given nowhere keeps it.
func TestSettings_OverrideTheFile(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	given := settingFlags(fs)
	if err := fs.Parse([]string{"--listen", ":2", "--weight", "3", "--join", "a:1, b:2", "--insecure-http"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MESHGATE_LOG_FORMAT": "text", "MESHGATE_LISTEN": ":3"}
	if err := flagsFromEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	cfg := fileConfig{Listen: ":1", DataDir: "/file", LogFormat: "json"}
	given.apply(&cfg)
	if cfg.Listen != ":2" || cfg.Cluster.Weight != 3 || !slices.Equal(cfg.Cluster.Join, []string{"a:1", "b:2"}) || !cfg.InsecureHTTP || cfg.LogFormat != "text" || cfg.DataDir != "/file" {
		t.Fatalf("%+v", cfg)
	}
	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	settingFlags(fs)
	if err := fs.Parse([]string{"--weight", "heavy"}); err == nil {
		t.Fatal("--weight heavy accepted")
	}
}

// TestSettings_EveryFieldIsSettable: each entry is declared once and
// points at a field of a type the table knows (else settingFlags panics).
func TestSettings_EveryFieldIsSettable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range settings {
		if seen[s.flag] {
			t.Errorf("%s: declared twice", s.flag)
		}
		seen[s.flag] = true
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	settingFlags(fs)
	var args []string
	for _, s := range settings {
		if f := fs.Lookup(s.flag); f == nil {
			t.Errorf("%s: no flag", s.flag)
		} else if _, isBool := s.field(&fileConfig{}).(*bool); isBool {
			args = append(args, "--"+s.flag)
		} else {
			args = append(args, "--"+s.flag, "1")
		}
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	var c fileConfig
	(&settingValues{fs: fs}).apply(&c)
	if c.Listen != "1" || c.Cluster.Weight != 1 || !c.InsecureHTTP || len(c.Cluster.Join) != 1 {
		t.Fatalf("%+v", c)
	}
}
