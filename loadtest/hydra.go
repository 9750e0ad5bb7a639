package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The ORY Hydra peer of the headline table: a running `hydra serve`
// (scripts/hydra.sh starts one), found in /proc like Keycloak's JVM; its
// version comes from the binary's file name (hydra-vX.Y.Z: a source build
// reports "master"), its database and hasher from the config file on its
// command line and the Hydra variables in its environment.

// hydraDefaultIterations is oauth2.hashers.pbkdf2.iterations when unset
// (Hydra v2.3.0's .schema/config.schema.json).
const hydraDefaultIterations = 25000

// hydraProc is a running Hydra as /proc shows it.
type hydraProc struct {
	Pid     int
	Version string   // "ORY Hydra v2.3.0", or "ORY Hydra" when the binary's name has none
	Config  []string // the -c/--config files, in order
	Env     []string // its environment's Hydra keys (DSN, OAUTH2_HASHERS_…), KEY=VALUE
}

// hydraSettings is what the headline says of a Hydra: its database and
// how it hashes client secrets.
type hydraSettings struct {
	DSN        string
	Algorithm  string // pbkdf2 | bcrypt
	Iterations int    // pbkdf2
	BcryptCost int
}

// findHydra finds a `hydra … serve …` process in procRoot: the first whose
// argv[0] is a file named hydra or hydra-<version>.
func findHydra(procRoot string) (hydraProc, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return hydraProc{}, fmt.Errorf("loadtest: finding hydra: %w", err)
	}
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if h, err := readHydraProc(procRoot, pid); err == nil {
			return h, nil
		}
	}
	return hydraProc{}, fmt.Errorf("loadtest: no `hydra serve` process in %s (scripts/hydra.sh start, or pass --hydra-pid)", procRoot)
}

// readHydraProc reads the command line and environment of pid and fails
// unless it is a Hydra server.
func readHydraProc(procRoot string, pid int) (hydraProc, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return hydraProc{}, fmt.Errorf("loadtest: hydra pid %d: %w", pid, err)
	}
	h, err := parseHydraCmdline(b)
	if err != nil {
		return hydraProc{}, fmt.Errorf("loadtest: pid %d: %w", pid, err)
	}
	h.Pid = pid
	if env, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil {
		for _, kv := range strings.Split(string(env), "\x00") {
			if k, _, ok := strings.Cut(kv, "="); ok && (k == "DSN" || strings.HasPrefix(k, "OAUTH2_HASHERS_")) {
				h.Env = append(h.Env, kv)
			}
		}
	}
	return h, nil
}

// parseHydraCmdline reads a /proc/<pid>/cmdline (NUL-separated argv): the
// version in argv[0]'s name and the config files; an error unless it is
// `hydra … serve …`.
func parseHydraCmdline(b []byte) (hydraProc, error) {
	argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	base := filepath.Base(argv[0])
	version, ok := hydraVersion(base)
	if !ok || len(argv) < 2 {
		return hydraProc{}, fmt.Errorf("%q is not hydra", base)
	}
	h := hydraProc{Version: version}
	serve := false
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "serve":
			serve = true
		case (a == "-c" || a == "--config") && i+1 < len(argv):
			i++
			h.Config = append(h.Config, splitList(argv[i])...)
		case strings.HasPrefix(a, "--config="):
			h.Config = append(h.Config, splitList(strings.TrimPrefix(a, "--config="))...)
		case strings.HasPrefix(a, "-c="):
			h.Config = append(h.Config, splitList(strings.TrimPrefix(a, "-c="))...)
		}
	}
	if !serve {
		return hydraProc{}, fmt.Errorf("%q is hydra, but not `hydra serve`", base)
	}
	return h, nil
}

// hydraVersion tells a Hydra binary by its file name: "hydra" or
// "hydra-v2.3.0" (scripts/hydra.sh's), "hydra-2.3.0".
func hydraVersion(base string) (string, bool) {
	if base == "hydra" {
		return "ORY Hydra", true
	}
	v, ok := strings.CutPrefix(base, "hydra-")
	if !ok || v == "" {
		return "", false
	}
	digits := strings.TrimPrefix(v, "v")
	if digits == "" || digits[0] < '0' || digits[0] > '9' {
		return "", false
	}
	return "ORY Hydra " + v, true
}

// settings reads the config files of h (later files win, as in Hydra) and
// then its environment (which wins over the files), with Hydra's defaults
// for what neither sets. Relative config paths are Hydra's working
// directory's, read from procRoot/<pid>/cwd.
func (h hydraProc) settings(procRoot string) (hydraSettings, error) {
	s := hydraSettings{Algorithm: "pbkdf2", Iterations: hydraDefaultIterations, BcryptCost: 10}
	for _, path := range h.Config {
		if !filepath.IsAbs(path) {
			cwd, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(h.Pid), "cwd"))
			if err != nil {
				return s, fmt.Errorf("loadtest: hydra config %s: its working directory: %w", path, err)
			}
			path = filepath.Join(cwd, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return s, fmt.Errorf("loadtest: hydra config: %w", err)
		}
		if err := s.mergeConfig(b); err != nil {
			return s, fmt.Errorf("loadtest: hydra config %s: %w", path, err)
		}
	}
	for _, kv := range h.Env {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "DSN":
			s.DSN = v
		case "OAUTH2_HASHERS_ALGORITHM":
			s.Algorithm = strings.ToLower(v)
		case "OAUTH2_HASHERS_PBKDF2_ITERATIONS":
			s.Iterations, err = strconv.Atoi(v)
		case "OAUTH2_HASHERS_BCRYPT_COST":
			s.BcryptCost, err = strconv.Atoi(v)
		}
		if err != nil {
			return s, fmt.Errorf("loadtest: hydra environment %s: %w", k, err)
		}
	}
	return s, nil
}

// mergeConfig sets what one Hydra config file (YAML or JSON) sets.
func (s *hydraSettings) mergeConfig(b []byte) error {
	var c struct {
		DSN    string `yaml:"dsn"`
		OAuth2 struct {
			Hashers struct {
				Algorithm string `yaml:"algorithm"`
				PBKDF2    struct {
					Iterations int `yaml:"iterations"`
				} `yaml:"pbkdf2"`
				BCrypt struct {
					Cost int `yaml:"cost"`
				} `yaml:"bcrypt"`
			} `yaml:"hashers"`
		} `yaml:"oauth2"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return err
	}
	if c.DSN != "" {
		s.DSN = c.DSN
	}
	h := c.OAuth2.Hashers
	if h.Algorithm != "" {
		s.Algorithm = strings.ToLower(h.Algorithm)
	}
	if h.PBKDF2.Iterations != 0 {
		s.Iterations = h.PBKDF2.Iterations
	}
	if h.BCrypt.Cost != 0 {
		s.BcryptCost = h.BCrypt.Cost
	}
	return nil
}

// sqliteFile is the database file of a sqlite DSN
// (sqlite:///tmp/x/db.sqlite?_fk=true → /tmp/x/db.sqlite); an error for
// another database or an in-memory one.
func (s hydraSettings) sqliteFile() (string, error) {
	rest, ok := strings.CutPrefix(s.DSN, "sqlite://")
	if !ok {
		rest, ok = strings.CutPrefix(s.DSN, "sqlite3://")
	}
	if !ok {
		scheme, _, _ := strings.Cut(s.DSN, "://")
		if s.DSN == "" {
			scheme = "no DSN"
		}
		return "", fmt.Errorf("loadtest: hydra database is not a sqlite file (%s)", scheme)
	}
	path, _, _ := strings.Cut(rest, "?")
	if path == "" || strings.Contains(path, ":memory:") || strings.Contains(s.DSN, "mode=memory") {
		return "", errors.New("loadtest: hydra database is in memory")
	}
	if p, err := url.PathUnescape(path); err == nil {
		path = p
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("loadtest: hydra database %q is a relative path", path)
	}
	return path, nil
}

// hasherText is the headline's client-secret hashing note of a Hydra.
func (s hydraSettings) hasherText() string {
	switch s.Algorithm {
	case "bcrypt":
		return fmt.Sprintf("client secret hashed with bcrypt, cost %d, verified on every token request", s.BcryptCost)
	case "pbkdf2":
		note := "Hydra's default"
		if s.Iterations != hydraDefaultIterations {
			note = fmt.Sprintf("not the default %d", hydraDefaultIterations)
		}
		unit := "iterations"
		if s.Iterations == 1 {
			unit = "iteration"
		}
		return fmt.Sprintf("client secret hashed with pbkdf2-sha256, %d %s (%s), verified on every token request", s.Iterations, unit, note)
	}
	return "client secret hashed with " + s.Algorithm
}

// hydraConfigText is the headline's configuration note of a Hydra row.
func hydraConfigText(client string, s hydraSettings) string {
	db := "database unknown"
	if path, err := s.sqliteFile(); err == nil {
		db = "SQLite file " + path
		if _, q, ok := strings.Cut(s.DSN, "?"); ok && q != "" {
			db += " (DSN options " + q + ")"
		}
	} else if s.DSN != "" {
		scheme, _, _ := strings.Cut(s.DSN, "://")
		db = scheme + " database"
	}
	return "`hydra serve all --dev` (scripts/hydra.sh), " + db + ", opaque access tokens (Hydra's default: each one stored), log level warn, client " + client + ", client_secret_basic"
}

// countHydraTokens is the number of access tokens in Hydra's SQLite file,
// through `scripts/hydra.sh tokens` (sqlite3 or python3, read-only).
func countHydraTokens(ctx context.Context, script, db string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, "tokens")
	cmd.Env = append(os.Environ(), "HYDRA_DB="+db)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("loadtest: %s tokens: %w: %s", script, err, firstLine(strings.TrimSpace(errOut.String())))
	}
	n, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("loadtest: %s tokens printed %q", script, firstLine(out.String()))
	}
	return n, nil
}
