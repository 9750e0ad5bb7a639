package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExperimentSmoke runs the experiment driver end to end, very short:
// the real tokengw binary (built here) with fresh bolt stores, reuse on and
// off, the window check and the reference server (this test binary,
// re-executed as the command); then it checks the token counts and the
// document splice.
func TestExperimentSmoke(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tokengw")
	build := exec.Command("go", "build", "-o", bin, "../cmd/tokengw")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "results")
	doc := filepath.Join(dir, "docs", "benchmarks.md")
	os.MkdirAll(filepath.Dir(doc), 0o755)
	prose := "# Benchmarks\n\nHand-written text.\n\n" + docBegin + "\nold numbers\n" + docEnd + "\n\nMore text.\n"
	os.WriteFile(doc, []byte(prose), 0o644)

	var stdout, stderr strings.Builder
	code := dispatch(t.Context(), []string{"experiment", "--bin", bin, "--build=false", "--duration", "1s",
		"--concurrency", "4", "--consumers", "2", "--stores", "bolt", "--reference-end=false", "--cooldown", "0",
		"--progress", "0", "--out-dir", out, "--doc", doc}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	var rep experimentReport
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	names := map[string]expResult{}
	for _, r := range rep.Results {
		names[r.Name] = r
		if r.Error != "" || r.Summary == nil {
			t.Errorf("%s: error %q", r.Name, r.Error)
			continue
		}
		if r.Summary.Requests == 0 || r.Summary.OK != r.Summary.Requests {
			t.Errorf("%s: counts %+v", r.Name, r.Summary.counts)
		}
		if r.Kind == "tokengw" {
			if r.TokensPersisted == nil || *r.TokensPersisted != r.TokensExpected {
				t.Errorf("%s: tokens persisted %v, expected %d (%s)", r.Name, r.TokensPersisted, r.TokensExpected, r.ExpectedRule)
			}
			if r.Summary.Server == nil || r.Summary.Server.CPUSeconds <= 0 {
				t.Errorf("%s: server not sampled: %+v", r.Name, r.Summary.Server)
			}
		}
	}
	for _, want := range []string{"reference", "bolt-reuse-on-2", "bolt-reuse-off-2", "bolt-reuse-on-2-window1s"} {
		if _, ok := names[want]; !ok {
			t.Errorf("no result for %s (have %v)", want, rep.Results)
		}
	}
	if r := names["bolt-reuse-on-2"]; r.TokensPersisted != nil && *r.TokensPersisted != 2 {
		t.Errorf("reuse on, 2 consumers: %d tokens persisted, want 2", *r.TokensPersisted)
	}
	if r := names["bolt-reuse-on-2"]; r.Summary != nil && r.Summary.DistinctTokens != 2 {
		t.Errorf("reuse on, 2 consumers: %d distinct tokens seen, want 2", r.Summary.DistinctTokens)
	}
	d, _ := os.ReadFile(doc)
	for _, want := range []string{"Hand-written text.", "More text.", "| configuration |", "bolt-reuse-off-2", "(benchmarks.svg)", docBegin, docEnd} {
		if !strings.Contains(string(d), want) {
			t.Errorf("document lacks %q", want)
		}
	}
	if strings.Contains(string(d), "old numbers") || strings.Count(string(d), docBegin) != 1 {
		t.Error("the generated section was not replaced exactly once")
	}
	// The published report is the document and its chart beside it; the
	// per-run reports are named, not linked (they stay out of the tree).
	if _, err := os.Stat(filepath.Join(filepath.Dir(doc), "benchmarks.svg")); err != nil {
		t.Errorf("no chart beside the document: %v", err)
	}
	if strings.Contains(string(d), ".html)") {
		t.Error("the document links a per-run report")
	}
	for _, f := range []string{"experiment.svg", "experiment.html", "results.md", "reference.html", "bolt-reuse-off-2.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	// The reports re-render from the JSON alone.
	os.Remove(filepath.Join(out, "experiment.svg"))
	os.Remove(filepath.Join(out, "reference.html"))
	if code := dispatch(t.Context(), []string{"report", "--results", out, "--doc", doc}, &stdout, &stderr); code != 0 {
		t.Fatalf("report: exit %d\n%s", code, stderr.String())
	}
	if code := dispatch(t.Context(), []string{"report", "--json", filepath.Join(out, "bolt-reuse-off-2.json"), "--html", filepath.Join(dir, "r.html")}, &stdout, &stderr); code != 0 {
		t.Fatalf("report --json: exit %d\n%s", code, stderr.String())
	}
	for _, f := range []string{filepath.Join(out, "experiment.svg"), filepath.Join(out, "reference.html"), filepath.Join(dir, "r.html")} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	d2, _ := os.ReadFile(doc)
	if string(d2) != string(d) {
		t.Error("re-rendering changed the document")
	}
}
