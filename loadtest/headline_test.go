package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := []byte("Running 10s test @ http://x\n  2 threads and 64 connections\nLTWRK 1000 3 2 150 2400 9000 10000000\n")
	got, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 1000, StatusErrors: 3, SocketErrors: 2, P50us: 150, P99us: 2400, MaxUS: 9000, DurationUS: 10_000_000}
	if *got != want {
		t.Fatalf("parseWrk = %+v, want %+v", *got, want)
	}
	if rps := got.rps(); rps != 100 {
		t.Fatalf("rps = %v, want 100", rps)
	}
	for _, bad := range []string{"", "LTWRK 1 2 3", "LTWRK 1 2 3 4 5 6 x", "LTWRK 1 2 3 4 5 6 -7"} {
		if _, err := parseWrk([]byte(bad)); err == nil {
			t.Errorf("parseWrk(%q) accepted", bad)
		}
	}
}

func FuzzParseWrk(f *testing.F) {
	f.Add([]byte("LTWRK 1000 3 2 150 2400 9000 10000000\n"))
	f.Add([]byte("LTWRK 1 1 1 1 1 1 99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseWrk(b)
		if err == nil && (r.Requests < 0 || r.DurationUS < 0 || r.rps() < 0) {
			t.Fatalf("negative field accepted: %+v", r)
		}
	})
}

func TestGeneratorLimited(t *testing.T) {
	ref := &headRow{Kind: "reference", Res: &wrkResult{Requests: 1000, DurationUS: 1e6}, Generator: &ProcStats{AvgCores: 0.5}}
	fast := headRow{Kind: "tokengw", Res: &wrkResult{Requests: 900, DurationUS: 1e6}, Generator: &ProcStats{AvgCores: 0.5}}
	if got := generatorLimited(fast, ref); got != "no" {
		t.Errorf("slower than the reference, wrk at 0.5 cores: %q, want no", got)
	}
	same := headRow{Kind: "tokengw", Res: &wrkResult{Requests: 1000, DurationUS: 1e6}, Generator: &ProcStats{AvgCores: 0.5}}
	if got := generatorLimited(same, ref); !strings.Contains(got, "reference no faster") {
		t.Errorf("as fast as the reference: %q", got)
	}
	// Faster than the reference but cheaper per request: the server, not
	// the generator, explains it. As fast and as costly: the generator.
	ref.Server = &ProcStats{CPUSeconds: 0.02}
	cheap := headRow{Kind: "tokengw", Res: &wrkResult{Requests: 1100, DurationUS: 1e6}, Generator: &ProcStats{AvgCores: 0.5}, Server: &ProcStats{CPUSeconds: 0.019}}
	if got := generatorLimited(cheap, ref); !strings.HasPrefix(got, "no (less server CPU") {
		t.Errorf("faster and cheaper per request than the reference: %q", got)
	}
	costly := cheap
	costly.Server = &ProcStats{CPUSeconds: 0.023}
	if got := generatorLimited(costly, ref); !strings.Contains(got, "reference no faster") {
		t.Errorf("faster but no cheaper per request: %q", got)
	}
	busy := headRow{Kind: "reference", Res: ref.Res, Generator: &ProcStats{AvgCores: 0.95}}
	if got := generatorLimited(busy, ref); !strings.Contains(got, "wrk at 0.95 cores") {
		t.Errorf("wrk at 0.95 cores: %q", got)
	}
}

// TestWrkScript runs the kit's Lua script with the real wrk against a
// listener that checks the method, body and Basic credentials, and reads
// the counts back through parseWrk.
func TestWrkScript(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Log("wrk is not installed; the script is checked for its header only")
		c := Credential{ID: "a b", Secret: "s:1"}
		if s := wrkScript(c); !strings.Contains(s, `"`+c.basicAuth()+`"`) {
			t.Fatalf("script without the form-encoded Basic header:\n%s", s)
		}
		return
	}
	c := Credential{ID: "lt-1", Secret: "s3cret:x"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if r.Method != http.MethodPost || !ok || id != c.ID || secret != "s3cret%3Ax" ||
			r.FormValue("grant_type") != "client_credentials" {
			http.Error(w, "bad", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"access_token":"x"}`))
	}))
	defer srv.Close()
	script := filepath.Join(t.TempDir(), "token.lua")
	if err := os.WriteFile(script, []byte(wrkScript(c)), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command("wrk", "-t1", "-c2", "-d1s", "-s", script, srv.URL)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("wrk: %v\n%s", err, out.String())
	}
	r, err := parseWrk(out.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if r.Requests == 0 || r.StatusErrors != 0 || r.DurationUS < int64(time.Second/time.Microsecond)/2 {
		t.Fatalf("wrk result %+v: want requests, all 2xx\n%s", r, out.String())
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{10 * time.Second: "10s", 2 * time.Minute: "2m", 90 * time.Second: "1m30s", 2 * time.Hour: "2h", 48 * time.Second: "48s"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// The kept round of a row is its fastest that measured something.
func TestFasterRow(t *testing.T) {
	slow := headRow{System: "x", Res: &wrkResult{Requests: 100, DurationUS: 1e6}}
	fast := headRow{System: "x", Res: &wrkResult{Requests: 200, DurationUS: 1e6}}
	failed := headRow{System: "x", Error: "wrk: boom"}
	for _, tc := range []struct {
		name string
		a, b headRow
		want int64 // requests of the kept round; 0: the failed one
	}{
		{"second faster", slow, fast, 200},
		{"first faster", fast, slow, 200},
		{"first failed", failed, slow, 100},
		{"second failed", slow, failed, 100},
		{"both failed", failed, failed, 0},
	} {
		got := fasterRow(tc.a, tc.b)
		var n int64
		if got.Res != nil {
			n = got.Res.Requests
		}
		if n != tc.want {
			t.Errorf("%s: kept %d requests, want %d", tc.name, n, tc.want)
		}
	}
}

// TestRoundRatios: each round's ratio is against the reference of the same
// round, a failed round of either is left out, and the median is the
// middle one.
func TestRoundRatios(t *testing.T) {
	row := func(kind string, reqs int64, cpuSec float64) headRow {
		return headRow{System: kind, Kind: kind, Res: &wrkResult{Requests: reqs, DurationUS: 10e6},
			Server: &ProcStats{CPUSeconds: cpuSec}}
	}
	rows := []headRow{row("reference", 1, 1), row("tokengw", 1, 1)}
	rounds := [][]headRow{
		{row("reference", 100000, 2.0), row("reference", 50000, 1.5), row("reference", 100000, 2.0), row("reference", 100000, 2.0)},
		{row("tokengw", 90000, 1.98), row("tokengw", 60000, 1.2), {System: "tokengw", Kind: "tokengw", Error: "boom"}, row("tokengw", 95000, 2.09)},
	}
	got := roundRatios(rows, rounds)
	// CPU per request: 1.98/90000 vs 2/100000 = 1.10; 1.2/60000 vs 1.5/50000 = 0.67; 2.09/95000 vs 2/100000 = 1.10.
	want := "- **tokengw**: CPU 1.10×, 0.67×, 1.10× (median 1.10×); req/s 0.90×, 1.20×, 0.95× (median 0.95×).\n"
	if !strings.Contains(got, want) {
		t.Fatalf("roundRatios:\n%s\nwant a line\n%s", got, want)
	}
	if roundRatios(rows, [][]headRow{rounds[0][:1], rounds[1][:1]}) != "" {
		t.Fatal("one round gave ratios")
	}
}
