package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBinary_PluginsDieWithTheGateway starts `meshgate serve` with its
// built-in plugins, kills it with SIGKILL (no chance to clean up), and
// checks that no plugin process outlives it.
func TestBinary_PluginsDieWithTheGateway(t *testing.T) {
	t.Parallel() // its own data directory and port
	bin := plainBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := exec.CommandContext(ctx, bin, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0")
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatal("no startup line")
	}
	kids := children(srv.Process.Pid)
	if len(kids) != 3 {
		t.Fatalf("plugin processes %v, want 3", kids)
	}
	_ = srv.Process.Signal(syscall.SIGKILL)
	_ = srv.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range kids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("plugin %d outlived the gateway", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st := stat(n); len(st) > 1 && st[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// stat returns state and ppid from /proc/pid/stat.
func stat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	return f[:2]
}

// alive reports whether pid runs. A zombie is dead: reaping it is the job
// of whatever adopted it, which the gateway cannot do once killed.
func alive(pid int) bool {
	st := stat(pid)
	return st != nil && st[0] != "Z" && st[0] != "X"
}
