package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"meshgate/internal/testkit"
)

// TestBinary_ServeTokenAndShutdown runs the real binary as a user would:
// `meshgate serve` on an empty data directory makes the dev key (0600) and
// a self-signed certificate, `meshgate token` mints a token that the
// server accepts, and SIGTERM stops it cleanly.
func TestBinary_ServeTokenAndShutdown(t *testing.T) {
	t.Parallel() // its own data directory and port
	bin := raceBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := exec.CommandContext(ctx, bin, "--data-dir", data, "--listen", "127.0.0.1:0")
	stdout, _ := srv.StdoutPipe()
	stderr := &lockedBuffer{}
	srv.Stderr = stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no startup line: %v\n%s", err, stderr.String())
	}
	// "meshgate: serving https://127.0.0.1:PORT/graphql (GraphiQL at /)"
	url := strings.Fields(line)[2]
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("startup line %q", line)
	}

	st, err := os.Stat(filepath.Join(data, "dev-hs256.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("dev key: %v mode %v, want 0600", err, st.Mode().Perm())
	}
	out, err := exec.Command(bin, "token", "--data-dir", data, "--user", "alice", "--device", "laptop", "--scope", "publish").Output()
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(out))
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("token output %q: want the token alone", out)
	}

	pem, err := os.ReadFile(filepath.Join(data, "tls-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"query":"{ me { user device scopes } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var r struct {
		Data struct {
			Me struct {
				User, Device string
				Scopes       []string
			}
		}
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Data.Me.User != "alice" || r.Data.Me.Scopes[0] != "publish" {
		t.Fatalf("me: %s %v", body, err)
	}
	// The certificate names localhost and 127.0.0.1 (verified above) and
	// the log says where it is and its fingerprint.
	if !strings.Contains(stderr.String(), "tls-cert.pem") || !strings.Contains(stderr.String(), `"sha256"`) {
		t.Fatalf("log does not name the certificate: %s", stderr.String())
	}

	_ = srv.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("did not exit after SIGTERM")
	}
}

func TestToken_RefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"token", "--data-dir", dir, "--user", "alice"},
		{"token", "--data-dir", dir, "--user", "a b", "--device", "d"},
		{"token", "--data-dir", dir, "--user", "a", "--device", "d", "--scope", "root"},
		{"token", "--data-dir", dir, "--user", "a", "--device", "d", "--ttl", "-1s"},
		{"nope"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestConfig_ReportsEveryErrorAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(path, []byte("log_level: loud\ntls_cert: x\nauth:\n  disable_dev_key: true\nmemory: {gc_headroom_mib: -5}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	err = c.validate(path)
	for _, want := range []string{"log_level", "tls_cert and tls_key", "disable_dev_key", "memory.gc_headroom_mib"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	if err := os.WriteFile(path, []byte("listen: :1\nnot_a_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(path); err == nil || !strings.Contains(err.Error(), "not_a_key") {
		t.Fatalf("unknown key: %v", err)
	}
}

var (
	plainBinOnce sync.Once
	plainBin     string
	plainBinErr  error
)

// plainBinary builds meshgate without the race detector once for the
// tests that run it with its plugins (subprocesses of the same binary).
func plainBinary(t *testing.T) string {
	t.Helper()
	plainBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meshgate-bin")
		if err != nil {
			plainBinErr = err
			return
		}
		plainBin = filepath.Join(dir, "meshgate")
		if out, err := exec.Command("go", "build", "-o", plainBin, ".").CombinedOutput(); err != nil {
			plainBinErr = fmt.Errorf("build: %w\n%s", err, out)
		}
	})
	if plainBinErr != nil {
		t.Fatal(plainBinErr)
	}
	return plainBin
}

// lockedBuffer is written by exec's copier while the test reads it.
type lockedBuffer = testkit.Buffer

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("listen: \":9443\"\nqueues: {buffer_size: 2048}\nplugins:\n  - {name: user, builtin: user}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"config", "check", "--config", good}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "ok") {
		t.Fatalf("good config: %v %q", err, out.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("log_level: loud\nqueues: {buffer_size: -3}\nlimits: {max_depth: -1}\nplugins:\n  - {name: x, path: /bin/x}\n  - {name: x, builtin: nope}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"config", "check", "--config", bad}, io.Discard, io.Discard)
	for _, want := range []string{"log_level", "queues: buffer_size", "limits: max_depth", "sha256", "used twice", "unknown builtin"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func TestParseFaults(t *testing.T) {
	var fc faultConfig
	if err := parseFaults("http.error=0.1, http.delay=50ms,http.delay_p=0.2,plugins.error=0.05,seed=9", &fc); err != nil {
		t.Fatal(err)
	}
	if fc.HTTP.ErrorProbability != 0.1 || fc.HTTP.Delay != 50*time.Millisecond || fc.HTTP.DelayProbability != 0.2 || fc.Plugins.ErrorProbability != 0.05 || fc.Seed != 9 {
		t.Fatalf("%+v", fc)
	}
	for _, bad := range []string{"http.error", "disk.error=1", "http.boom=1", "http.delay=soon"} {
		if parseFaults(bad, &fc) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFlagsFromEnv(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "", "")
	dir := fs.String("data-dir", "", "")
	insecure := fs.Bool("insecure-http", false, "")
	if err := fs.Parse([]string{"--listen", ":1"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MESHGATE_LISTEN": ":2", "MESHGATE_DATA_DIR": "/d", "MESHGATE_INSECURE_HTTP": "true"}
	if err := flagsFromEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if *listen != ":1" || *dir != "/d" || !*insecure {
		t.Fatalf("listen %q (flag wins), data-dir %q, insecure %v", *listen, *dir, *insecure)
	}
	env["MESHGATE_INSECURE_HTTP"] = "maybe"
	fs2 := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs2.Bool("insecure-http", false, "")
	if err := fs2.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := flagsFromEnv(fs2, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil || !strings.Contains(err.Error(), "MESHGATE_INSECURE_HTTP") {
		t.Fatalf("bad env value: %v", err)
	}
}

// TestConfigCheck_RejectsWhatCannotStart: a config that can never serve
// (a negative rate, a checksum that is not hex, two plugins owning one
// scheme) fails `config check` and start-up alike, each problem named
// with the file and its key.
func TestConfigCheck_RejectsWhatCannotStart(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(`limits:
  per_user: {request_rate: -5, subscribe_burst: -1, max_streams: -2}
  max_streams: -3
plugins:
  - {name: feeds, path: /bin/true, sha256: "`+strings.Repeat("zz", 32)+`"}
  - {name: files, builtin: storage}
  - {name: files2, builtin: storage}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	wants := []string{
		bad + ": limits: per_user.request_rate",
		bad + ": limits: per_user.subscribe_burst",
		bad + ": limits: per_user.max_streams",
		bad + ": limits: max_streams",
		bad + ": plugins[0].sha256",
		bad + ": plugins[2].builtin: scheme \"storage\" is already owned by plugins[1] (files)",
	}
	check := run(context.Background(), []string{"config", "check", "--config", bad}, io.Discard, io.Discard)
	// Were the config accepted, serve would run until this deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := run(ctx, []string{"serve", "--config", bad, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"}, io.Discard, io.Discard)
	for name, err := range map[string]error{"config check": check, "serve": start} {
		for _, want := range wants {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error does not say %q:\n%v", name, want, err)
			}
		}
	}
}
