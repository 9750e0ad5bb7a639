package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports (the kernel's CONFIG_HZ is
// hidden from user space behind it).
const clockTicks = 100

// procSample is one reading of a process's resource use.
type procSample struct {
	At  time.Time
	CPU float64 // user + system CPU seconds since the process started
	RSS uint64  // resident set size, bytes
	HWM uint64  // peak resident set size so far (VmHWM), bytes; 0 if unknown
}

// sampler reads a process's CPU time and memory.
type sampler interface {
	sample(ctx context.Context) (procSample, error)
	source() string
}

// procSampler reads /proc/<pid>/stat and /proc/<pid>/status (Linux).
type procSampler struct {
	root string // "/proc" unless a test says otherwise
	pid  int
}

func (p procSampler) source() string { return fmt.Sprintf("%s/%d", p.root, p.pid) }

func (p procSampler) sample(context.Context) (procSample, error) {
	s := procSample{At: time.Now()}
	dir := filepath.Join(p.root, strconv.Itoa(p.pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return s, err
	}
	if s.CPU, err = parseStatCPU(stat); err != nil {
		return s, err
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return s, err
	}
	s.RSS, s.HWM = parseStatusMem(status)
	return s, nil
}

// parseStatCPU returns utime + stime in seconds from /proc/<pid>/stat. The
// command name (field 2) is in parentheses and may itself hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("proc stat: %w", err)
	}
	return float64(ut+st) / clockTicks, nil
}

// parseStatusMem returns VmRSS and VmHWM in bytes from /proc/<pid>/status.
func parseStatusMem(status []byte) (rss, hwm uint64) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(rest) // "1234 kB"
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && strings.EqualFold(f[1], "kB") {
			v *= 1024
		}
		if name == "VmRSS" {
			rss = v
		} else {
			hwm = v
		}
	}
	return rss, hwm
}

// metricsSampler reads process_cpu_seconds_total and
// process_resident_memory_bytes (with or without a namespace prefix) from a
// Prometheus text endpoint (the standard process collector), for servers
// whose /proc is out of reach.
type metricsSampler struct {
	url    string
	client *http.Client
}

func (m metricsSampler) source() string { return m.url }

func (m metricsSampler) sample(ctx context.Context) (procSample, error) {
	s := procSample{At: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return s, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("metrics: %s: %s", m.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return s, err
	}
	var haveCPU bool
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		name, _, _ := strings.Cut(f[0], "{")
		switch {
		case isProcessMetric(name, "cpu_seconds_total"):
			s.CPU, haveCPU = v, true
		case isProcessMetric(name, "resident_memory_bytes"):
			s.RSS = uint64(v)
		}
	}
	if !haveCPU {
		return s, fmt.Errorf("metrics: %s has no process_cpu_seconds_total", m.url)
	}
	return s, nil
}

// isProcessMetric reports whether name is the process collector's metric
// process_<suffix>, with or without a namespace (tokengw exports
// tokengw_process_cpu_seconds_total).
func isProcessMetric(name, suffix string) bool {
	return name == "process_"+suffix || strings.HasSuffix(name, "_process_"+suffix)
}

// ProcStats is a process's resource use during an attack.
type ProcStats struct {
	Source        string      `json:"source"`
	CPUSeconds    float64     `json:"cpu_seconds"`                 // user+system CPU time during the attack
	CPUPer1k      float64     `json:"cpu_seconds_per_1k_requests"` // CPUSeconds per 1,000 completed requests
	AvgCores      float64     `json:"avg_cores"`                   // CPUSeconds / wall time
	PeakRSSBytes  uint64      `json:"peak_rss_bytes"`              // VmHWM at the end, or the largest sample
	StartRSSBytes uint64      `json:"start_rss_bytes"`
	EndRSSBytes   uint64      `json:"end_rss_bytes"`
	Points        []procPoint `json:"points,omitempty"` // per sampling interval
	Error         string      `json:"error,omitempty"`  // the last sampling error, if any
}

// procPoint is the CPU and memory of one sampling interval.
type procPoint struct {
	T     float64 `json:"t"`     // seconds since the attack began, end of the interval
	Cores float64 `json:"cores"` // CPU seconds per wall second in the interval
	RSS   uint64  `json:"rss"`   // bytes at the end of the interval
}

// watcher samples a process every interval until stopped.
type watcher struct {
	s        sampler
	interval time.Duration
	begin    time.Time
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	samples []procSample
	lastErr error
}

// watch takes a first sample now, then one every interval.
func watch(ctx context.Context, s sampler, interval time.Duration) *watcher {
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{s: s, interval: interval, begin: time.Now(), cancel: cancel, done: make(chan struct{})}
	w.take(ctx)
	go func() {
		defer close(w.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.take(ctx)
			}
		}
	}()
	return w
}

func (w *watcher) take(ctx context.Context) {
	s, err := w.s.sample(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			w.lastErr = err
		}
		return
	}
	w.samples = append(w.samples, s)
}

// stop takes a last sample and summarises the samples against requests
// completed requests.
func (w *watcher) stop(requests int64) *ProcStats {
	w.cancel()
	<-w.done
	w.take(context.Background())
	w.mu.Lock()
	defer w.mu.Unlock()
	ps := &ProcStats{Source: w.s.source()}
	if w.lastErr != nil {
		ps.Error = w.lastErr.Error()
	}
	if len(w.samples) < 2 {
		if ps.Error == "" {
			ps.Error = "fewer than two samples"
		}
		return ps
	}
	first, last := w.samples[0], w.samples[len(w.samples)-1]
	ps.CPUSeconds = last.CPU - first.CPU
	if wall := last.At.Sub(first.At).Seconds(); wall > 0 {
		ps.AvgCores = ps.CPUSeconds / wall
	}
	if requests > 0 {
		ps.CPUPer1k = ps.CPUSeconds / float64(requests) * 1000
	}
	ps.StartRSSBytes, ps.EndRSSBytes = first.RSS, last.RSS
	ps.PeakRSSBytes = last.HWM
	for i, s := range w.samples {
		ps.PeakRSSBytes = max(ps.PeakRSSBytes, s.RSS)
		if i == 0 {
			continue
		}
		prev := w.samples[i-1]
		dt := s.At.Sub(prev.At).Seconds()
		if dt <= 0 || dt < w.interval.Seconds()/2 {
			continue // the short last interval (the stop sample) is all noise
		}
		ps.Points = append(ps.Points, procPoint{
			T: s.At.Sub(w.begin).Seconds(), Cores: (s.CPU - prev.CPU) / dt, RSS: s.RSS,
		})
	}
	return ps
}

// machineSampler reads the whole machine's busy CPU time from /proc/stat
// (every CPU: user, nice, system, irq, softirq, steal), so that what other
// processes used during an attack can be told apart from the server's and
// the load generator's share.
type machineSampler struct {
	root string
}

func (m machineSampler) source() string { return m.root + "/stat" }

func (m machineSampler) sample(context.Context) (procSample, error) {
	s := procSample{At: time.Now()}
	b, err := os.ReadFile(filepath.Join(m.root, "stat"))
	if err != nil {
		return s, err
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(first))
	if len(f) < 9 || f[0] != "cpu" {
		return s, errors.New("proc stat: no cpu line")
	}
	var busy uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return s, fmt.Errorf("proc stat: %w", err)
		}
		busy += v
	}
	s.CPU = float64(busy) / clockTicks
	return s, nil
}
