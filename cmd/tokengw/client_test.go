package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cli runs the real binary with the example config and env, and returns its
// stdout, stderr and exit code.
func cli(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run %v: %v", args, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// parseSecret reads the output of client add / rotate-secret.
func parseSecret(t *testing.T, out string) (id, secret string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "client_id: ") || !strings.HasPrefix(lines[1], "client_secret: ") {
		t.Fatalf("unexpected output %q", out)
	}
	id, secret = strings.TrimPrefix(lines[0], "client_id: "), strings.TrimPrefix(lines[1], "client_secret: ")
	if raw, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(raw) < 32 {
		t.Fatalf("secret %q is not >= 256 bits of base64url", secret)
	}
	return id, secret
}

func tokenStatus(t *testing.T, addr, id, secret string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestClientCommands runs every `tokengw client` command on a bolt file and
// checks their effect on a server started on the same file afterwards.
func TestClientCommands(t *testing.T) {
	data := t.TempDir()
	env := []string{
		"TOKENGW_STORE__BOLT__PATH=" + filepath.Join(data, "tokengw.db"),
		"TOKENGW_AUTH__ARGON2__MEMORY_KIB=1024",
		"TOKENGW_AUTH__ARGON2__TIME=1",
		"TOKENGW_LIMITS__PER_IP_FAILED_AUTH__RATE=0",
	}
	const cfg = "../../config.example.yaml"

	out, errOut, code := cli(t, env, "client", "add", "--config", cfg, "--id", "svc-a", "--scopes", "write read",
		"--token-ttl", "30m", "--rate", "10", "--burst", "20", "--introspect")
	if code != 0 {
		t.Fatalf("add: exit %d: %s", code, errOut)
	}
	if _, s := parseSecret(t, out); s == "" || !strings.Contains(errOut, "shown only now") {
		t.Fatalf("add: stderr %q", errOut)
	}
	_, oldSecret := parseSecret(t, out)
	out, errOut, code = cli(t, env, "client", "add", "--scopes", "read", "--config", cfg)
	if code != 0 {
		t.Fatalf("add (generated id): exit %d: %s", code, errOut)
	}
	genID, genSecret := parseSecret(t, out)
	if len(genID) < 20 {
		t.Fatalf("generated id %q", genID)
	}

	// list: a stable table, no secrets, no hashes.
	out, errOut, code = cli(t, env, "client", "list", "--config", cfg)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "ID SOURCE SCOPES TOKEN_TTL LIMIT INTROSPECT CREATED AUTH RESOURCES" {
		t.Fatalf("header %q", lines[0])
	}
	if len(lines) != 4 || strings.Join(rows["demo"], " ") != "demo config read write default default no - client_secret_basic -" ||
		strings.Join(rows["svc-a"][:9], " ") != "svc-a store read write 30m0s 10/s burst 20 yes" ||
		strings.Join(rows[genID][:6], " ") != genID+" store read default default no" {
		t.Fatalf("list:\n%s", out)
	}
	if strings.Contains(out, oldSecret) || strings.Contains(out, genSecret) || strings.Contains(out, "argon2") {
		t.Fatalf("list shows a secret or a hash:\n%s", out)
	}

	// update --burst alone keeps the rate (and --rate alone the burst); a
	// client on limits.per_client is told to give both, and stays there.
	listRow := func(id string) string {
		t.Helper()
		out, errOut, code := cli(t, env, "client", "list", "--config", cfg)
		if code != 0 {
			t.Fatalf("list: exit %d: %s", code, errOut)
		}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == id {
				return strings.Join(f, " ")
			}
		}
		t.Fatalf("list has no %s:\n%s", id, out)
		return ""
	}
	if _, errOut, code := cli(t, env, "client", "update", "--config", cfg, "svc-a", "--burst", "30"); code != 0 {
		t.Fatalf("update --burst: exit %d: %s", code, errOut)
	}
	if row := listRow("svc-a"); !strings.Contains(row, "10/s burst 30") {
		t.Fatalf("after update --burst 30: %s; want 10/s burst 30", row)
	}
	if _, errOut, code := cli(t, env, "client", "update", "--config", cfg, "svc-a", "--rate", "20"); code != 0 {
		t.Fatalf("update --rate: exit %d: %s", code, errOut)
	}
	if row := listRow("svc-a"); !strings.Contains(row, "20/s burst 30") {
		t.Fatalf("after update --rate 20: %s; want 20/s burst 30", row)
	}
	if _, errOut, code := cli(t, env, "client", "update", "--config", cfg, genID, "--burst", "5"); code != 1 || !strings.Contains(errOut, "--rate: the client has no limit of its own") {
		t.Fatalf("update --burst of a client on limits.per_client: exit %d, %q", code, errOut)
	}
	if row := listRow(genID); !strings.Contains(row, genID+" store read default default") {
		t.Fatalf("after the refused update: %s; want the default limit", row)
	}
	if _, errOut, code := cli(t, env, "client", "update", "--config", cfg, "svc-a", "--rate", "10", "--burst", "20"); code != 0 {
		t.Fatalf("update --rate --burst: exit %d: %s", code, errOut)
	}

	// Refusals, each with a message that says why.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "--config", cfg, "--id", "demo", "--scopes", "read"}, "read-only"},
		{[]string{"add", "--config", cfg, "--id", "svc-a", "--scopes", "read"}, "exists already"},
		{[]string{"add", "--config", cfg, "--scopes", `a"b`}, "--scopes"},
		{[]string{"add", "--config", cfg}, "--scopes: at least one scope"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--token-ttl", "soon"}, "--token-ttl"},
		{[]string{"add", "--config", cfg, "--id", "café", "--scopes", "read"}, "--id"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--rate", "NaN", "--burst", "1"}, "--rate"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--rate", "-Inf", "--burst", "1"}, "--rate"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--rate", "5"}, "--burst"},
		{[]string{"remove", "--config", cfg, "demo"}, "read-only"},
		{[]string{"rotate-secret", "--config", cfg, "demo"}, "read-only"},
		{[]string{"remove", "--config", cfg, "nobody"}, `no client "nobody"`},
		{[]string{"remove", "--config", cfg}, "client id as the one argument"},
		{[]string{"list"}, "--config FILE is required"},
		{[]string{"list", "--config", cfg, "--id", "x"}, "flag of client add"},
		{[]string{"rotate-secret", "--config", cfg, "svc-a", "--jwks-uri", "https://i/j"}, "flag of client add"},
	} {
		_, errOut, code := cli(t, env, append([]string{"client"}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Fatalf("client %v: exit %d, stderr %q; want exit 1 mentioning %q", tc.args, code, errOut, tc.want)
		}
	}
	for _, args := range [][]string{{"client"}, {"client", "bogus"}} {
		if _, errOut, code := cli(t, env, args...); code != 2 || !strings.Contains(errOut, "usage: tokengw client") {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
	if _, errOut, code := cli(t, append(env, "TOKENGW_STORE__DRIVER=memory"), "client", "list", "--config", cfg); code != 1 || !strings.Contains(errOut, "admin API") {
		t.Fatalf("memory store: exit %d, %q", code, errOut)
	}

	// rotate-secret (id before the flags works too).
	out, errOut, code = cli(t, env, "client", "rotate-secret", "svc-a", "--config", cfg)
	if code != 0 {
		t.Fatalf("rotate-secret: exit %d: %s", code, errOut)
	}
	id, newSecret := parseSecret(t, out)
	if id != "svc-a" || newSecret == oldSecret {
		t.Fatalf("rotate-secret: %q", out)
	}

	// A server on the file sees all of it; meanwhile the CLI says the file
	// is locked, and the admin API works instead.
	p := serveProc(t, data, append(env, "TOKENGW_SERVER__ADMIN_TOKEN=cli-test-admin-token-0123")...)
	for _, tc := range []struct {
		id, secret string
		want       int
	}{{"svc-a", newSecret, 200}, {"svc-a", oldSecret, 401}, {genID, genSecret, 200}} {
		if got := tokenStatus(t, p.addr, tc.id, tc.secret); got != tc.want {
			t.Fatalf("token %s: %d, want %d", tc.id, got, tc.want)
		}
	}
	if _, errOut, code := cli(t, env, "client", "list", "--config", cfg); code != 1 || !strings.Contains(errOut, "locked") || !strings.Contains(errOut, "admin API") {
		t.Fatalf("list while serving: exit %d, %q", code, errOut)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.adminAddr+"/admin/clients", strings.NewReader(`{"id": "via-api", "scopes": "read"}`))
	req.Header.Set("Authorization", "Bearer cli-test-admin-token-0123")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ Secret string }
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != 201 || tokenStatus(t, p.addr, "via-api", created.Secret) != 200 {
		t.Fatalf("admin API on the real binary: %d", resp.StatusCode)
	}
	p.stop(t)

	// remove, then the server refuses the client.
	out, errOut, code = cli(t, env, "client", "remove", "--config", cfg, "svc-a")
	if code != 0 || out != "removed client \"svc-a\"\n" {
		t.Fatalf("remove: exit %d, %q %q", code, out, errOut)
	}
	p = serveProc(t, data, env...)
	if got := tokenStatus(t, p.addr, "svc-a", newSecret); got != 401 {
		t.Fatalf("removed client: %d", got)
	}
	if got := tokenStatus(t, p.addr, "via-api", created.Secret); got != 200 {
		t.Fatalf("client added through the admin API, after a restart: %d", got)
	}
	p.stop(t)

	// A config that defines an id the store has stops start-up, naming it.
	overlap := filepath.Join(t.TempDir(), "overlap.yaml")
	os.WriteFile(overlap, []byte("clients:\n  - id: "+genID+"\n    secret_hash: \"$argon2id$v=19$m=19456,t=2,p=1$yIzQs/ygdnZQU70BSqEspg$NpdsK9EyrNiNFlPBjqa1MCy+SyJWj+C8GvWP/69onF8\"\n    scopes: [read]\n"), 0o600)
	_, errOut, code = cli(t, append(env, "TOKENGW_SERVER__ADDR=127.0.0.1:0", "TOKENGW_SERVER__ADMIN_ADDR="), "serve", "--config", overlap)
	if code != 1 || !strings.Contains(errOut, `"`+genID+`"`) || !strings.Contains(errOut, "both in the configuration") {
		t.Fatalf("serve with an overlapping id: exit %d, %q", code, errOut)
	}
}
