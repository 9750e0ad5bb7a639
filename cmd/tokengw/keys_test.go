package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestKeysCommands: list gives an empty ring its first key, rotate adds a
// pending one, both on the store the server uses.
func TestKeysCommands(t *testing.T) {
	data := t.TempDir()
	env := []string{
		"TOKENGW_STORE__BOLT__PATH=" + filepath.Join(data, "tokengw.db"),
		"TOKENGW_ISSUER__TOKEN_FORMAT=jwt",
		"TOKENGW_ISSUER__SIGNING__ALG=EdDSA",
	}
	const cfg = "../../config.example.yaml"
	out, errOut, code := cli(t, env, "keys", "list", "--config", cfg)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "EdDSA") || !strings.Contains(lines[1], "active") || !strings.HasSuffix(lines[1], "true") {
		t.Fatalf("list: %q", out)
	}
	kid := strings.Fields(lines[1])[0]

	out, errOut, code = cli(t, env, "keys", "rotate", "--config", cfg)
	if code != 0 || !strings.HasPrefix(out, "added key ") {
		t.Fatalf("rotate: exit %d: %s %s", code, out, errOut)
	}
	out, _, _ = cli(t, env, "keys", "list", "--config", cfg)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], kid) || !strings.Contains(lines[1], "active") || !strings.Contains(lines[2], "pending") {
		t.Fatalf("list after rotate: %q", out)
	}

	for _, args := range [][]string{{"keys"}, {"keys", "bogus", "--config", cfg}, {"keys", "list", "extra", "--config", cfg}} {
		if _, _, code := cli(t, env, args...); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
}
