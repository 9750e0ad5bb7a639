package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want float64
		bad  bool
	}{
		{"plain", "1234 (tokengw) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0", 3.0, false},
		{"comm with spaces and parens", "77 (a) b (c)) R 1 77 77 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 0 0", 0.03, false},
		{"truncated", "1 (x) S 1 2 3", 0, true},
		{"no comm", "garbage", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.bad {
				t.Fatalf("err = %v, want error %v", err, tt.bad)
			}
			if !tt.bad && (got < tt.want-1e-9 || got > tt.want+1e-9) {
				t.Fatalf("cpu = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseStatusMem(t *testing.T) {
	rss, hwm := parseStatusMem([]byte("Name:\ttokengw\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads: 8\n"))
	if rss != 10240*1024 || hwm != 20480*1024 {
		t.Fatalf("rss, hwm = %d, %d", rss, hwm)
	}
}

// TestProcSamplerSelf samples this process for real and a fake /proc.
func TestProcSamplerSelf(t *testing.T) {
	s, err := procSampler{root: "/proc", pid: os.Getpid()}.sample(context.Background())
	if err != nil {
		t.Fatalf("sampling /proc (Linux only): %v", err)
	}
	if s.RSS == 0 || s.CPU < 0 {
		t.Fatalf("sample of self = %+v", s)
	}

	root := t.TempDir()
	dir := filepath.Join(root, "42")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "stat"), []byte("42 (srv) S 1 1 1 0 -1 0 0 0 0 0 100 100 0 0 20 0 1 0 1 0 0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "status"), []byte("VmRSS:\t1024 kB\nVmHWM:\t2048 kB\n"), 0o644)
	os.WriteFile(filepath.Join(root, "stat"), []byte("cpu  100 0 50 1000 0 0 0 0 0 0\ncpu0 1 2 3\n"), 0o644)
	w := watch(context.Background(), procSampler{root: root, pid: 42}, time.Hour)
	os.WriteFile(filepath.Join(dir, "stat"), []byte("42 (srv) S 1 1 1 0 -1 0 0 0 0 0 300 100 0 0 20 0 1 0 1 0 0\n"), 0o644)
	ps := w.stop(4000)
	if ps.CPUSeconds < 1.999 || ps.CPUSeconds > 2.001 || ps.CPUPer1k < 0.4999 || ps.CPUPer1k > 0.5001 || ps.PeakRSSBytes != 2048*1024 {
		t.Fatalf("stats = %+v", ps)
	}
	m, err := machineSampler{root: root}.sample(context.Background())
	if err != nil || m.CPU != 1.5 {
		t.Fatalf("machine sample = %+v, %v", m, err)
	}
}

func TestMetricsSampler(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("# HELP process_cpu_seconds_total x\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\nprocess_resident_memory_bytes 3.3554432e+07\ngo_goroutines 10\n"))
	}))
	defer srv.Close()
	s, err := metricsSampler{url: srv.URL, client: srv.Client()}.sample(context.Background())
	if err != nil || s.CPU != 12.5 || s.RSS != 32<<20 {
		t.Fatalf("sample = %+v, %v", s, err)
	}
	ns := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("tokengw_process_cpu_seconds_total 3\ntokengw_process_resident_memory_bytes 1024\n"))
	}))
	defer ns.Close()
	if s, err := (metricsSampler{url: ns.URL, client: ns.Client()}).sample(context.Background()); err != nil || s.CPU != 3 || s.RSS != 1024 {
		t.Fatalf("namespaced sample = %+v, %v", s, err)
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("up 1\n")) }))
	defer bad.Close()
	if _, err := (metricsSampler{url: bad.URL, client: bad.Client()}).sample(context.Background()); err == nil {
		t.Fatal("no error for metrics without process_cpu_seconds_total")
	}
}
