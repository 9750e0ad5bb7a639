package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeProc writes a /proc entry: cmdline (and environ) NUL-separated.
func fakeProc(t *testing.T, root string, pid int, argv []string, env []string) string {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.Join(argv, "\x00")+"\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if env != nil {
		if err := os.WriteFile(filepath.Join(dir, "environ"), []byte(strings.Join(env, "\x00")+"\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFindHydra(t *testing.T) {
	root := t.TempDir()
	bin := "/root/.cache/tokengw-hydra/hydra-v2.3.0"
	fakeProc(t, root, 1, []string{"/sbin/init"}, nil)
	fakeProc(t, root, 12, []string{"bash", "scripts/hydra.sh", "start"}, nil)
	fakeProc(t, root, 20, []string{bin, "migrate", "sql", "up", "-e", "--yes"}, nil)
	fakeProc(t, root, 25, []string{"/usr/bin/hydra-proxy", "serve"}, nil)
	fakeProc(t, root, 26, []string{"/usr/bin/hydrant", "serve"}, nil)
	fakeProc(t, root, 30, []string{bin, "serve", "all", "--dev", "--sqa-opt-out", "-c", "/tmp/tokengw-hydra/hydra.json"},
		[]string{"HOME=/root", "DSN=sqlite:///tmp/other.sqlite?_fk=true", "OAUTH2_HASHERS_PBKDF2_ITERATIONS=1", "SECRETS_SYSTEM=not-copied"})
	if err := os.Symlink(filepath.Join(root, "30"), filepath.Join(root, "self")); err != nil {
		t.Fatal(err)
	}
	h, err := findHydra(root)
	if err != nil {
		t.Fatal(err)
	}
	want := hydraProc{Pid: 30, Version: "ORY Hydra v2.3.0", Config: []string{"/tmp/tokengw-hydra/hydra.json"},
		Env: []string{"DSN=sqlite:///tmp/other.sqlite?_fk=true", "OAUTH2_HASHERS_PBKDF2_ITERATIONS=1"}}
	if h.Pid != want.Pid || h.Version != want.Version || !slices.Equal(h.Config, want.Config) || !slices.Equal(h.Env, want.Env) {
		t.Fatalf("findHydra = %+v, want %+v", h, want)
	}

	// --hydra-pid names a process: it is read, and refused unless it is
	// `hydra serve`.
	if _, err := readHydraProc(root, 20); err == nil || !strings.Contains(err.Error(), "not `hydra serve`") {
		t.Errorf("hydra migrate accepted as the server: %v", err)
	}
	for _, pid := range []int{1, 12, 25, 26, 99} {
		if _, err := readHydraProc(root, pid); err == nil {
			t.Errorf("pid %d accepted as hydra", pid)
		}
	}

	empty := t.TempDir()
	fakeProc(t, empty, 7, []string{"/usr/bin/java", "-jar", "x"}, nil)
	if _, err := findHydra(empty); err == nil || !strings.Contains(err.Error(), "--hydra-pid") {
		t.Fatalf("no hydra: err = %v", err)
	}
	if _, err := findHydra(filepath.Join(empty, "missing")); err == nil {
		t.Fatal("no /proc: no error")
	}
}

func FuzzParseHydraCmdline(f *testing.F) {
	f.Add([]byte("/root/.cache/tokengw-hydra/hydra-v2.3.0\x00serve\x00all\x00--dev\x00-c\x00/tmp/h.json\x00"))
	f.Add([]byte("hydra\x00--config=a.yaml,b.yaml\x00serve\x00public\x00-c\x00"))
	f.Add([]byte("/usr/bin/java\x00-Dkc.home.dir=/x\x00"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHydraCmdline(b)
		if err != nil {
			return
		}
		if !strings.HasPrefix(h.Version, "ORY Hydra") || !bytes.Contains(b, []byte("serve")) {
			t.Fatalf("accepted %q as %+v", b, h)
		}
		for _, c := range h.Config {
			if c == "" || strings.Contains(c, "\x00") {
				t.Fatalf("config path %q from %q", c, b)
			}
		}
	})
}

func FuzzHydraSQLiteFile(f *testing.F) {
	for _, dsn := range []string{"sqlite:///tmp/tokengw-hydra/db.sqlite?_fk=true", "sqlite3:///a%20b", "sqlite://file::memory:", "postgres://u:p@h/db", "sqlite://%zz?x", ""} {
		f.Add(dsn)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		path, err := hydraSettings{DSN: dsn}.sqliteFile()
		if err != nil {
			return
		}
		if !filepath.IsAbs(path) || strings.Contains(dsn, ":memory:") {
			t.Fatalf("%q: database %q", dsn, path)
		}
		_ = hydraConfigText("c", hydraSettings{DSN: dsn})
	})
}

func TestHydraVersion(t *testing.T) {
	for base, want := range map[string]string{
		"hydra": "ORY Hydra", "hydra-v2.3.0": "ORY Hydra v2.3.0", "hydra-2.2.0": "ORY Hydra 2.2.0",
		"hydra-": "", "hydra-proxy": "", "hydra-v": "", "hydrant": "", "keycloak": "",
	} {
		got, ok := hydraVersion(base)
		if ok != (want != "") || got != want {
			t.Errorf("hydraVersion(%q) = %q, %v; want %q", base, got, ok, want)
		}
	}
}

// The settings: config files in order, the environment over them, Hydra's
// defaults for the rest; a relative config path is Hydra's working
// directory's.
func TestHydraSettings(t *testing.T) {
	root := t.TempDir()
	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "a.json"), []byte(`{"dsn": "sqlite:///tmp/a.sqlite?_fk=true", "log": {"level": "warn"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "b.yaml"), []byte("oauth2:\n  hashers:\n    pbkdf2:\n      iterations: 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := fakeProc(t, root, 40, []string{"/opt/hydra", "serve", "all", "--config", "a.json", "-c=" + filepath.Join(cfgDir, "b.yaml")}, nil)
	if err := os.Symlink(cfgDir, filepath.Join(dir, "cwd")); err != nil {
		t.Fatal(err)
	}
	h, err := readHydraProc(root, 40)
	if err != nil {
		t.Fatal(err)
	}
	s, err := h.settings(root)
	if err != nil {
		t.Fatal(err)
	}
	if s != (hydraSettings{DSN: "sqlite:///tmp/a.sqlite?_fk=true", Algorithm: "pbkdf2", Iterations: 1000, BcryptCost: 10}) {
		t.Fatalf("settings = %+v", s)
	}
	if got := s.hasherText(); !strings.Contains(got, "pbkdf2-sha256, 1000 iterations (not the default 25000)") {
		t.Errorf("hasherText = %q", got)
	}

	h.Env = []string{"DSN=sqlite:///var/h.db", "OAUTH2_HASHERS_ALGORITHM=BCRYPT", "OAUTH2_HASHERS_BCRYPT_COST=12"}
	if s, err = h.settings(root); err != nil || s.DSN != "sqlite:///var/h.db" || s.Algorithm != "bcrypt" || s.BcryptCost != 12 {
		t.Fatalf("environment over the files: %+v, %v", s, err)
	}
	if got := s.hasherText(); got != "client secret hashed with bcrypt, cost 12, verified on every token request" {
		t.Errorf("hasherText = %q", got)
	}
	if got := (hydraSettings{Algorithm: "pbkdf2", Iterations: 1}).hasherText(); !strings.Contains(got, "pbkdf2-sha256, 1 iteration (not the default 25000)") {
		t.Errorf("one iteration: hasherText = %q", got)
	}
	h.Env = []string{"OAUTH2_HASHERS_PBKDF2_ITERATIONS=many"}
	if _, err := h.settings(root); err == nil {
		t.Error("a non-numeric iterations variable accepted")
	}

	h = hydraProc{Pid: 40}
	if s, err = h.settings(root); err != nil || s.Iterations != hydraDefaultIterations || s.Algorithm != "pbkdf2" {
		t.Fatalf("no config: %+v, %v", s, err)
	}
	if got := s.hasherText(); got != "client secret hashed with pbkdf2-sha256, 25000 iterations (Hydra's default), verified on every token request" {
		t.Errorf("default hasherText = %q", got)
	}
	h.Config = []string{filepath.Join(cfgDir, "missing.json")}
	if _, err := h.settings(root); err == nil {
		t.Error("a missing config file: no error")
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "bad.yaml"), []byte("oauth2: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.Config = []string{filepath.Join(cfgDir, "bad.yaml")}
	if _, err := h.settings(root); err == nil {
		t.Error("a malformed config file: no error")
	}
}

func TestHydraSQLiteFile(t *testing.T) {
	for _, tc := range []struct{ dsn, want, err string }{
		{"sqlite:///tmp/tokengw-hydra/db.sqlite?_fk=true", "/tmp/tokengw-hydra/db.sqlite", ""},
		{"sqlite3:///var/lib/hydra%20db/h.sqlite", "/var/lib/hydra db/h.sqlite", ""},
		{"sqlite://file::memory:?_fk=true", "", "in memory"},
		{"sqlite:///tmp/x.sqlite?mode=memory", "", "in memory"},
		{"sqlite://db.sqlite", "", "relative"},
		{"postgres://u:p@h/db", "", "not a sqlite file (postgres)"},
		{"", "", "no DSN"},
	} {
		got, err := hydraSettings{DSN: tc.dsn}.sqliteFile()
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("%q: %q, %v; want %q", tc.dsn, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: err = %v, want %q", tc.dsn, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "u:p") {
			t.Errorf("%q: the error carries the DSN's password: %v", tc.dsn, err)
		}
	}
}

func TestHydraConfigText(t *testing.T) {
	got := hydraConfigText("lt-hydra", hydraSettings{DSN: "sqlite:///tmp/tokengw-hydra/db.sqlite?_fk=true"})
	for _, want := range []string{"`hydra serve all --dev`", "SQLite file /tmp/tokengw-hydra/db.sqlite (DSN options _fk=true)", "opaque access tokens", "client lt-hydra", "client_secret_basic"} {
		if !strings.Contains(got, want) {
			t.Errorf("config text %q lacks %q", got, want)
		}
	}
	if got := hydraConfigText("c", hydraSettings{DSN: "postgres://u:pa55w0rd@h/db"}); !strings.Contains(got, "postgres database") || strings.Contains(got, "pa55w0rd") {
		t.Errorf("postgres config text = %q", got)
	}
}

func TestParseHeadlineFlags(t *testing.T) {
	o, err := parseHeadlineFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.hydraURL != "http://127.0.0.1:4444" || o.hydraClient != "lt-hydra" || o.hydraSecret != "lt-hydra-secret" || o.hydraPid != 0 || o.peersOnly || o.doc == "" {
		t.Fatalf("defaults = %+v", o)
	}
	if !strings.HasSuffix(o.hydraScript, filepath.Join("scripts", "hydra.sh")) {
		t.Errorf("hydra script = %q", o.hydraScript)
	}
	kinds := func(rows []headRow) (k []string) {
		for _, r := range rows {
			k = append(k, r.Kind+onOff(r.Reuse))
		}
		return k
	}
	if got := kinds(headlineRows(o, "tokengw x")); !slices.Equal(got, []string{"referenceoff", "tokengwon", "tokengwoff", "keycloakoff", "hydraoff"}) {
		t.Errorf("default rows = %v", got)
	}

	o, err = parseHeadlineFlags([]string{"--hydra-url", "", "--doc", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(headlineRows(o, "")); slices.Contains(got, "hydraoff") {
		t.Errorf("--hydra-url '': rows = %v", got)
	}

	o, err = parseHeadlineFlags([]string{"--peers-only", "--hydra-url=http://h:1", "--hydra-pid", "77", "--hydra-client", "c", "--hydra-secret", "s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.doc != "" || !o.peersOnly || o.hydraURL != "http://h:1" || o.hydraPid != 77 || o.hydraClient != "c" || o.hydraSecret != "s" {
		t.Fatalf("peers-only options = %+v", o)
	}
	rows := headlineRows(o, "")
	if got := kinds(rows); !slices.Equal(got, []string{"keycloakoff", "hydraoff"}) {
		t.Errorf("--peers-only rows = %v", got)
	}
	if !strings.Contains(rows[1].Config, "client c,") {
		t.Errorf("hydra row config = %q", rows[1].Config)
	}

	for _, bad := range [][]string{
		{"--peers-only", "--doc", "docs/benchmarks.md"},
		{"--peers-only", "--keycloak-url", "", "--hydra-url", ""},
		{"--hydra-pid", "-1"},
		{"--rounds", "0"},
		{"--hydra-pid", "x"},
		{"stray"},
	} {
		if _, err := parseHeadlineFlags(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// --peers-only --doc '' says the same as --peers-only.
	if _, err := parseHeadlineFlags([]string{"--peers-only", "--doc", ""}, io.Discard); err != nil {
		t.Errorf("--peers-only --doc '': %v", err)
	}
}

func TestHeadlineMarkdownHydra(t *testing.T) {
	o := &headlineOptions{threads: 2, connections: 64, duration: 5 * time.Second, rounds: 1, hydraURL: "http://127.0.0.1:4444"}
	rows := []headRow{{System: "ORY Hydra", Kind: "hydra", Config: "cfg", Version: "ORY Hydra v2.3.0", Hash: "client secret hashed with pbkdf2-sha256",
		Res: &wrkResult{Requests: 500, DurationUS: 5e6, P50us: 700e3, P99us: 1900e3}, Server: &ProcStats{CPUSeconds: 7, AvgCores: 1.4, EndRSSBytes: 60 << 20},
		Generator: &ProcStats{AvgCores: 0.01}, Tokens: "501"}}
	md := headlineMarkdown(o, rows, nil)
	for _, want := range []string{"| ORY Hydra | 100 | — |", "14000.0 µs", "| 501 |", "- **ORY Hydra**: cfg; ORY Hydra v2.3.0; client secret hashed with pbkdf2-sha256.", "for Hydra its `hydra serve` process"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "not measured") {
		t.Errorf("a measured Hydra row said not measured:\n%s", md)
	}
	o.hydraURL = ""
	if md := headlineMarkdown(o, nil, nil); !strings.Contains(md, "- **ORY Hydra**: not measured in this run (`--hydra-url ''`).") {
		t.Errorf("no Hydra row, no note:\n%s", md)
	}
}

func TestCommandLineRedactsPeerSecrets(t *testing.T) {
	got := commandLine([]string{"go", "run", ".", "headline", "--hydra-secret", "h1dra", "--keycloak-secret=k3y", "-hydra-secret=h2", "--hydra-client", "lt-hydra"})
	for _, leak := range []string{"h1dra", "k3y", "h2"} {
		if strings.Contains(got, leak) {
			t.Errorf("commandLine leaks %q: %s", leak, got)
		}
	}
	if !strings.Contains(got, "--hydra-client lt-hydra") || !strings.Contains(got, "--keycloak-secret=REDACTED") {
		t.Errorf("commandLine = %s", got)
	}
}

// sqliteExec runs SQL on a database file with the sqlite3 CLI or python3,
// as scripts/hydra.sh reads it.
func sqliteExec(t *testing.T, db, sql string) {
	t.Helper()
	var cmd *exec.Cmd
	if _, err := exec.LookPath("sqlite3"); err == nil {
		cmd = exec.Command("sqlite3", db, sql)
	} else if _, err := exec.LookPath("python3"); err == nil {
		cmd = exec.Command("python3", "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()", db, sql)
	} else {
		t.Skip("neither sqlite3 nor python3 to make a database")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// countHydraTokens through the real scripts/hydra.sh on a real SQLite file
// with Hydra's table.
func TestCountHydraTokens(t *testing.T) {
	script := filepath.Join(moduleRoot(), "scripts", "hydra.sh")
	db := filepath.Join(t.TempDir(), "db.sqlite")
	sqliteExec(t, db, "CREATE TABLE hydra_oauth2_access (signature VARCHAR(255) PRIMARY KEY); INSERT INTO hydra_oauth2_access VALUES ('a'), ('b'), ('c');")
	n, err := countHydraTokens(context.Background(), script, db)
	if err != nil || n != 3 {
		t.Fatalf("count = %d, %v; want 3", n, err)
	}
	if _, err := countHydraTokens(context.Background(), script, filepath.Join(t.TempDir(), "none.sqlite")); err == nil || !strings.Contains(err.Error(), "no database") {
		t.Fatalf("missing database: err = %v", err)
	}
	other := filepath.Join(t.TempDir(), "other.sqlite")
	sqliteExec(t, other, "CREATE TABLE t (x INT);")
	if _, err := countHydraTokens(context.Background(), script, other); err == nil {
		t.Fatal("a database without hydra_oauth2_access: no error")
	}
}

// TestHydraLive runs against a real Hydra (scripts/hydra.sh start) when
// TEST_HYDRA_URL is set, e.g. TEST_HYDRA_URL=http://127.0.0.1:4444: the
// process is found in /proc, its settings and database read, a token
// request adds a token to the database, and the headline's row measures it
// with wrk for a second.
func TestHydraLive(t *testing.T) {
	base := os.Getenv("TEST_HYDRA_URL")
	if base == "" {
		t.Skip("TEST_HYDRA_URL not set (scripts/hydra.sh start; TEST_HYDRA_URL=http://127.0.0.1:4444)")
	}
	client, secret := envOr("TEST_HYDRA_CLIENT", "lt-hydra"), envOr("TEST_HYDRA_SECRET", "lt-hydra-secret")
	ctx := context.Background()
	h, err := findHydra("/proc")
	if err != nil {
		t.Fatal(err)
	}
	s, err := h.settings("/proc")
	if err != nil {
		t.Fatal(err)
	}
	db, err := s.sqliteFile()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(moduleRoot(), "scripts", "hydra.sh")
	before, err := countHydraTokens(ctx, script, db)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/oauth2/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "bearer") || tok.ExpiresIn <= 0 {
		t.Fatalf("token response %s: %+v, %v", resp.Status, tok, err)
	}
	after, err := countHydraTokens(ctx, script, db)
	if err != nil {
		t.Fatal(err)
	}
	if after < before+1 {
		t.Fatalf("tokens stored %d -> %d after a token request; want one more", before, after)
	}

	if _, err := exec.LookPath("wrk"); err != nil {
		t.Log("wrk is not installed; the headline row is not run")
		return
	}
	o := &headlineOptions{hydraURL: base, hydraClient: client, hydraSecret: secret, hydraScript: script,
		duration: time.Second, threads: 1, connections: 2, rounds: 1, outDir: t.TempDir()}
	e := &experiment{o: &experimentOptions{stopTimeout: 10 * time.Second}, log: io.Discard, work: t.TempDir()}
	rows := headlineRows(&headlineOptions{peersOnly: true, hydraURL: base, hydraClient: client}, "")
	r := rows[0]
	e.headOne(ctx, o, &r, 1)
	if r.Error != "" || r.Res == nil || r.Res.Requests == 0 || r.Res.StatusErrors != 0 {
		t.Fatalf("headline row: %+v (%s)", r.Res, r.Error)
	}
	n, err := strconv.ParseInt(r.Tokens, 10, 64)
	if err != nil || n < r.Res.Requests {
		t.Fatalf("tokens stored %q for %d requests (warm-up besides)", r.Tokens, r.Res.Requests)
	}
	if r.Server == nil || r.Server.CPUSeconds <= 0 || !strings.HasPrefix(r.Version, "ORY Hydra") || !strings.Contains(r.Hash, "pbkdf2") {
		t.Fatalf("row = %+v, server %+v", r, r.Server)
	}
	t.Logf("hydra: %.0f req/s, %.2f ms CPU per request, %s, %s", r.Res.rps(), r.Server.CPUSeconds/float64(r.Res.Requests)*1e3, r.Version, r.Hash)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
