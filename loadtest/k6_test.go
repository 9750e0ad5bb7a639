package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestK6Scripts checks the k6 scripts without k6 (and without its AGPL Go
// module): testdata/k6harness.mjs runs each under Node with k6's modules
// stubbed, validates its options and thresholds, and calls its functions
// against canned responses. Offline; it needs Node (the project machines have it).
func TestK6Scripts(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed to check the k6 scripts: %v", err)
	}
	k6dir, _ := filepath.Abs("k6")
	harness, _ := filepath.Abs(filepath.Join("testdata", "k6harness.mjs"))
	credsDir := t.TempDir()
	csv := filepath.Join(credsDir, "creds.csv")
	if err := writeCredentials(csv, generateCredentials(60, "k-")); err != nil {
		t.Fatal(err)
	}
	jsonCreds := filepath.Join(credsDir, "creds.json")
	if err := writeCredentials(jsonCreds, []Credential{{"a b", "s+1"}, {"c", "d"}, {"e", "f"}}); err != nil {
		t.Fatal(err)
	}
	type expect struct {
		VUs           *int           `json:"vus,omitempty"`
		Duration      string         `json:"duration,omitempty"`
		Scenarios     []string       `json:"scenarios,omitempty"`
		TokenRequests *int           `json:"tokenRequests,omitempty"`
		Consumers     *int           `json:"consumers,omitempty"`
		URL           string         `json:"url,omitempty"`
		Metrics       map[string]any `json:"metrics,omitempty"`
	}
	n := func(v int) *int { return &v }
	tests := []struct {
		name, script string
		env          map[string]string
		iterations   int
		respond      string
		want         expect
	}{
		{"abusive defaults (demo client)", "abusive.js", nil, 4, "ok",
			expect{VUs: n(50), Duration: "30s", TokenRequests: n(4), Consumers: n(1), URL: "http://127.0.0.1:8080/oauth2/token"}},
		{"abusive from env, CSV credentials", "abusive.js",
			map[string]string{"TARGET": "http://127.0.0.1:18080/", "VUS": "200", "DURATION": "2m", "CREDENTIALS": csv, "CONSUMERS": "50"}, 60, "ok",
			expect{VUs: n(200), Duration: "2m", TokenRequests: n(60), Consumers: n(50), URL: "http://127.0.0.1:18080/oauth2/token"}},
		{"well-behaved caches its token", "well-behaved.js", map[string]string{"CREDENTIALS": jsonCreds}, 5, "ok",
			expect{TokenRequests: n(1), Metrics: map[string]any{"token_fetches": 1, "token_fetch_ratio": 0.2}}},
		{"many consumers, reuse on", "many-consumers.js", map[string]string{"CREDENTIALS": csv}, 3, "ok",
			expect{TokenRequests: n(3), Metrics: map[string]any{"token_reused": 1}}},
		{"many consumers, reuse off", "many-consumers.js", map[string]string{"CREDENTIALS": jsonCreds, "CONSUMERS": "0", "REUSE": "off"}, 2, "ok",
			expect{TokenRequests: n(2)}},
		{"rate-limit probe", "rate-limit-probe.js", map[string]string{"CREDENTIALS": jsonCreds, "ABUSE_RATE": "40"}, 3, "limit-first",
			expect{Scenarios: []string{"abuser", "bystander"}, TokenRequests: n(6), Consumers: n(3),
				Metrics: map[string]any{"rate_limited": 0.5, "retry_after_present": 1, "unexpected_status": 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := json.Marshal(map[string]any{"env": tt.env, "iterations": tt.iterations, "respond": tt.respond, "expect": tt.want})
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, harness, k6dir, t.TempDir(), tt.script, string(c))
			cmd.Env = append(os.Environ(), "NODE_OPTIONS=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
	// Every script in k6/ is covered.
	files, _ := filepath.Glob(filepath.Join(k6dir, "*.js"))
	covered := map[string]bool{"lib.js": true}
	for _, tt := range tests {
		covered[tt.script] = true
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s has no case in TestK6Scripts", filepath.Base(f))
		}
	}
}
