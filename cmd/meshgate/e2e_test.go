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

	"github.com/coder/websocket"
)

// TestBinary_PluginsEndToEnd runs the real binary with its real plugins:
// alice and bob share a storage folder, so alice may see bob's presence
// and invite his devices, while carol shares nothing and may not; file and
// membership changes reach a WebSocket client.
func TestBinary_PluginsEndToEnd(t *testing.T) {
	t.Parallel() // its own data directory and port
	bin := plainBinary(t)
	data := t.TempDir()
	folder := filepath.Join(data, "storage", "photos")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(folder, ".members"), []byte("alice\nbob\n"), 0o644); err != nil {
		t.Fatal(err)
	}
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
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		if len(r.Errors) > 0 {
			code, _ = r.Errors[0].Extensions["code"].(string)
		}
		return r.Data, code
	}
	alice, bob, carol := tok("alice", "laptop"), tok("bob", "phone"), tok("carol", "pc")
	var d map[string]json.RawMessage
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
	// Storage changes reach a WebSocket client: create, change, delete a
	// file, then edit the members.
	d, _ = gql(alice, `mutation { createQueue { name } }`)
	var aq struct{ Name string }
	if err := json.Unmarshal(d["createQueue"], &aq); err != nil {
		t.Fatal(err)
	}
	if _, code := gql(alice, `mutation { subscribe(queue: "`+aq.Name+`", resource: "storage:folders/photos") { etag } }`); code != "" {
		t.Fatal(code)
	}
	ws := dialWS(t, client, strings.Replace(url, "https", "wss", 1), alice)
	ws.subscribe(aq.Name)
	file := filepath.Join(folder, "cat.txt")
	if err := os.WriteFile(file, []byte("meow"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws.expect(`"added":[{"path":"cat.txt","size":4}]`)
	if err := os.WriteFile(file, []byte("meow meow"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws.expect(`"modified":[{"path":"cat.txt","size":9}]`)
	os.Remove(file)
	ws.expect(`"removed":[{"path":"cat.txt"`)
	// Membership edits show on storage:folders/photos/members. Each edit
	// waits for the last one's notification: edits closer together than
	// the publisher's debounce (100 ms) are one change, on purpose.
	if _, code := gql(alice, `mutation { subscribe(queue: "`+aq.Name+`", resource: "storage:folders/photos/members") { etag } }`); code != "" {
		t.Fatal(code)
	}
	if err := os.WriteFile(filepath.Join(folder, ".members"), []byte("alice\nbob\ncarol\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws.expect(`"added":["carol"]`)
	if err := os.WriteFile(filepath.Join(folder, ".members"), []byte("alice\nbob\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws.expect(`"removed":["carol"]`)

	// The probe walks the whole path and names each step; pointed at a
	// wrong endpoint, it fails naming the first step that broke.
	ptok, _ := exec.Command(bin, "token", "--data-dir", data, "--user", "probe", "--device", "probe", "--scope", "publish").Output()
	out, err := exec.Command(bin, "probe", "--url", url, "--token", strings.TrimSpace(string(ptok)), "--cacert", filepath.Join(data, "tls-cert.pem")).CombinedOutput()
	if err != nil || strings.Count(string(out), "\nok ") < 7 {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "probe", "--url", strings.Replace(url, "/graphql", "/nope", 1), "--token", strings.TrimSpace(string(ptok)), "--cacert", filepath.Join(data, "tls-cert.pem")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `probe failed at "authenticate"`) {
		t.Fatalf("probe against a wrong URL: %v\n%s", err, out)
	}

	// Bob's queue holds alice's invite, naming her device.
	d, _ = gql(bob, `{ queues { name } }`)
	var qs []struct{ Name string }
	if err := json.Unmarshal(d["queues"], &qs); err != nil {
		t.Fatal(err)
	}
	d, _ = gql(bob, `{ notifications(queue: "`+qs[0].Name+`") { items { kind payload from { user device } } } }`)
	if !strings.Contains(string(d["notifications"]), `"kind":"INVITE","payload":{"offer":"sdp"},"from":{"user":"alice","device":"laptop"}`) {
		t.Fatalf("bob's queue: %s", d["notifications"])
	}
}

// wsClient is a minimal graphql-transport-ws client on coder/websocket.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialWS(t *testing.T, hc *http.Client, url, tok string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	t.Cleanup(func() { c.CloseNow() })
	w := &wsClient{t: t, conn: c}
	w.send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + tok}})
	w.expect(`"connection_ack"`)
	return w
}

func (w *wsClient) send(v any) {
	if err := wsSend(context.Background(), w.conn, v); err != nil {
		w.t.Fatal(err)
	}
}

func (w *wsClient) subscribe(queue string) {
	w.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($q:String!){ notifications(queue:$q) { seq kind resource etag payload } }`, "variables": map[string]any{"q": queue}}})
}

// expect reads messages until one contains want, for at most 10 s.
func (w *wsClient) expect(want string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := wsAwait(ctx, w.conn, want); err != nil {
		w.t.Fatalf("waiting for %s: %v", want, err)
	}
}
