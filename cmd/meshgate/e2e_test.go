package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBinary_InvitesFollowThePresenceRule runs the real binary with its
// real plugins: alice and bob share a storage folder, so alice may see
// bob's presence and invite his devices; carol shares nothing and may not.
func TestBinary_InvitesFollowThePresenceRule(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "meshgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data := t.TempDir()
	folder := filepath.Join(data, "storage", "photos")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(folder, ".members"), []byte("alice\nbob\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := exec.CommandContext(ctx, bin, "--data-dir", data, "--listen", "127.0.0.1:0")
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal("no startup line")
	}
	url := strings.Fields(line)[2]
	pem, _ := os.ReadFile(filepath.Join(data, "tls-cert.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	tok := func(user, dev string) string {
		out, err := exec.Command(bin, "token", "--data-dir", data, "--user", user, "--device", dev).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	gql := func(tok, query string) (data map[string]json.RawMessage, code string) {
		body, _ := json.Marshal(map[string]any{"query": query})
		req, _ := http.NewRequest("POST", url, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			Data   map[string]json.RawMessage
			Errors []struct{ Extensions map[string]any }
		}
		json.NewDecoder(resp.Body).Decode(&r)
		if len(r.Errors) > 0 {
			code, _ = r.Errors[0].Extensions["code"].(string)
		}
		return r.Data, code
	}
	alice, bob, carol := tok("alice", "laptop"), tok("bob", "phone"), tok("carol", "pc")
	if _, code := gql(bob, `mutation { createQueue { name } }`); code != "" {
		t.Fatal(code)
	}
	// The storage plugin reads the folder at start; poll until the rule holds.
	deadline := time.Now().Add(15 * time.Second)
	for {
		d, code := gql(alice, `mutation { sendInvite(toUser: "bob", toDevice: "phone", payload: {offer: "sdp"}) }`)
		if code == "" && string(d["sendInvite"]) == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice could not invite bob: %s %s", code, d["sendInvite"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, code := gql(carol, `mutation { sendInvite(toUser: "bob", toDevice: "phone") }`); code != "FORBIDDEN" {
		t.Fatalf("carol inviting bob: %q, want FORBIDDEN", code)
	}
	// Bob's queue holds alice's invite, naming her device.
	d, _ := gql(bob, `{ queues { name } }`)
	var qs []struct{ Name string }
	json.Unmarshal(d["queues"], &qs)
	d, _ = gql(bob, `{ notifications(queue: "`+qs[0].Name+`") { items { kind payload from { user device } } } }`)
	if !strings.Contains(string(d["notifications"]), `"kind":"INVITE","payload":{"offer":"sdp"},"from":{"user":"alice","device":"laptop"}`) {
		t.Fatalf("bob's queue: %s", d["notifications"])
	}
}
