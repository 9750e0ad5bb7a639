package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binPath string

// TestMain builds the real binary once; the tests run it as a user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokengw-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "tokengw")
	if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestVersionAndUsage(t *testing.T) {
	out, err := exec.Command(binPath, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "tokengw ") {
		t.Fatalf("version: %q %v", out, err)
	}
	cmd := exec.Command(binPath, "bogus")
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("unknown command: exit %d", cmd.ProcessState.ExitCode())
	}
}

func TestHashSecret(t *testing.T) {
	cmd := exec.Command(binPath, "hash-secret")
	cmd.Stdin = strings.NewReader("s3cret\n")
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash-secret: %q %v", out, err)
	}
	cmd = exec.Command(binPath, "hash-secret")
	cmd.Stdin = strings.NewReader("")
	if err := cmd.Run(); err == nil {
		t.Fatal("hash-secret accepted an empty secret")
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("reuse:\n  enabled: true\n  max_elapsed_fraction: 2\n"), 0o600)
	var stderr bytes.Buffer
	cmd := exec.Command(binPath, "serve", "--config", cfg)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("serve with a bad config: %v", err)
	}
	if !strings.Contains(stderr.String(), "reuse.max_elapsed_fraction") {
		t.Fatalf("stderr does not name the key: %q", stderr.String())
	}
	cmd = exec.Command(binPath, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "TOKENGW_REUSE__MAX_ELAPSED_FRACTION=0.5", "TOKENGW_SERVR__ADDR=x")
	stderr.Reset()
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "servr") {
		t.Fatalf("unknown env key not reported: %q", stderr.String())
	}
}

// proc is a running tokengw serve.
type proc struct {
	cmd       *exec.Cmd
	addr      string
	adminAddr string
	logs      *syncBuffer
	done      chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveProc starts `tokengw serve` with the example config, a data dir of
// its own and ephemeral ports, and waits for its "serving" log line.
func serveProc(t *testing.T, dataDir string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, "serve", "--config", "../../config.example.yaml")
	cmd.Env = append(os.Environ(),
		"TOKENGW_SERVER__ADDR=127.0.0.1:0",
		"TOKENGW_SERVER__ADMIN_ADDR=127.0.0.1:0",
		"TOKENGW_STORE__BOLT__PATH="+filepath.Join(dataDir, "tokengw.db"),
		"TOKENGW_LOG__LEVEL=debug",
	)
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "serving" {
				p.addr, _ = m["addr"].(string)
				p.adminAddr, _ = m["admin_addr"].(string)
				close(ready)
			}
		}
		p.done <- cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-p.done:
		t.Fatalf("tokengw exited before serving: %v\n%s", err, p.logs.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("tokengw did not start\n%s", p.logs.String())
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
}

// wait waits for the process to exit 0 (after a SIGTERM sent already).
func (p *proc) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30s after SIGTERM")
	}
}

const demoAuth = "Basic ZGVtbzpkZW1vLXNlY3JldA==" // demo:demo-secret

func tokenRequest(t *testing.T, client *http.Client, addr string, body io.Reader) (int, map[string]any, error) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/oauth2/token", body)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", demoAuth)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, m, nil
}

// TestServeRestartKeepsTokens: the demo client of the example config gets a
// token; after SIGTERM (exit 0) and a restart on the same data dir, the same
// live token is handed out again.
func TestServeRestartKeepsTokens(t *testing.T) {
	data := t.TempDir()
	p := serveProc(t, data)
	code, first, err := tokenRequest(t, http.DefaultClient, p.addr, strings.NewReader("grant_type=client_credentials"))
	if err != nil || code != 200 || first["token_type"] != "Bearer" {
		t.Fatalf("first token: %d %v %v", code, first, err)
	}
	p.stop(t)
	if strings.Contains(p.logs.String(), first["access_token"].(string)) || strings.Contains(p.logs.String(), "demo-secret") ||
		strings.Contains(p.logs.String(), strings.TrimPrefix(demoAuth, "Basic ")) {
		t.Fatal("a token or secret reached the log")
	}
	p2 := serveProc(t, data)
	code, again, err := tokenRequest(t, http.DefaultClient, p2.addr, strings.NewReader("grant_type=client_credentials"))
	if err != nil || code != 200 || again["access_token"] != first["access_token"] {
		t.Fatalf("after restart: %d same=%v %v", code, again["access_token"] == first["access_token"], err)
	}
	p2.stop(t)
}

// TestSIGTERMDrainsInFlight: requests whose bodies are still arriving when
// SIGTERM lands get complete answers, then the process exits 0. The clients
// write HTTP/1.1 by hand on raw connections, so the request line and headers
// reach the server while the body is held back.
func TestSIGTERMDrainsInFlight(t *testing.T) {
	// Bodies held for the whole test; no readiness delay (see
	// TestSIGTERMNotReadyWhileServing).
	p := serveProc(t, t.TempDir(), "TOKENGW_SERVER__TIMEOUTS__BODY=1m", "TOKENGW_SERVER__TIMEOUTS__SHUTDOWN_DELAY=0s")
	const n = 20
	body := "grant_type=client_credentials"
	conns := make([]net.Conn, n)
	for i := range n {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
		fmt.Fprintf(c, "POST /oauth2/token HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
			"Authorization: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", p.addr, demoAuth, len(body), body[:10])
	}
	// Observe (not guess) that all n handlers are blocked reading their bodies.
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.adminAddr + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		dump, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if blockedReaders(dump) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handlers not in flight:\n%s", dump)
		}
		time.Sleep(20 * time.Millisecond) // polling an observable condition
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The server stops accepting: poll until a new connection is refused.
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			break
		}
		c.Close()
		if i > 1000 {
			t.Fatal("still accepting after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, c := range conns {
		if _, err := io.WriteString(c, body[10:]); err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		var m map[string]any
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || m["access_token"] == nil {
			t.Fatalf("in-flight request %d: %d %v %v", i, resp.StatusCode, m, err)
		}
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after draining")
	}
	if !strings.Contains(p.logs.String(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop logged:\n%s", p.logs.String())
	}
}

// TestSIGTERMNotReadyWhileServing: after SIGTERM /readyz answers 503 for
// server.timeouts.shutdown_delay while a token request still gets 200, so a
// load balancer's prober sees the replica leave before its listener closes;
// then the process exits 0.
func TestSIGTERMNotReadyWhileServing(t *testing.T) {
	p := serveProc(t, t.TempDir(), "TOKENGW_SERVER__TIMEOUTS__SHUTDOWN_DELAY=4s")
	get := func(path string) int {
		resp, err := http.Get("http://" + p.addr + path)
		if err != nil {
			t.Fatalf("GET %s during the delay: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/readyz"); code != 200 {
		t.Fatalf("/readyz before SIGTERM: %d", code)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := 0; get("/readyz") != 503; i++ { // observable: poll
		if i > 1000 {
			t.Fatal("/readyz never turned 503 after SIGTERM")
		}
		time.Sleep(2 * time.Millisecond)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", demoAuth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("token request during the delay: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("token request during the delay: %d, want 200", resp.StatusCode)
	}
	if code := get("/healthz"); code != 200 {
		t.Fatalf("/healthz during the delay: %d", code)
	}
	p.wait(t)
}

// blockedReaders counts goroutine stacks in a debug=1 dump that sit in the
// token handler's body read.
func blockedReaders(dump []byte) int {
	n := 0
	for _, block := range bytes.Split(dump, []byte("\n\n")) {
		if bytes.Contains(block, []byte("server.(*Server).readForm")) {
			// debug=1 groups identical stacks under a line "N @ 0x...".
			for _, line := range bytes.Split(block, []byte("\n")) {
				var c int
				if _, err := fmt.Sscanf(string(line), "%d @", &c); err == nil {
					n += c
					break
				}
			}
		}
	}
	return n
}
