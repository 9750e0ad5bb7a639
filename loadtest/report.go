package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// writeSummaryText prints the summary table of one attack.
func writeSummaryText(w io.Writer, s *Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "attack\t%s (scenario %s)\n", s.Name, s.Scenario)
	fmt.Fprintf(tw, "target\t%s\n", s.Target)
	fmt.Fprintf(tw, "load\t%d workers, rate %s, %d consumers, %.1f s\n", s.Concurrency, rateString(s.Rate), s.Consumers, s.Seconds)
	fmt.Fprintf(tw, "requests\t%d\t%.1f req/s\n", s.Requests, s.RPS)
	fmt.Fprintf(tw, "  2xx\t%d\t%.1f /s\n", s.OK, s.OKRPS)
	fmt.Fprintf(tw, "  429\t%d\t(%d with Retry-After)\n", s.Limited, s.RetryAfter)
	fmt.Fprintf(tw, "  other status\t%d\t%s\n", s.Other, codesString(s.Codes))
	fmt.Fprintf(tw, "  errors\t%d\t%s\n", s.Errors, errorsString(s.ErrorText))
	l := s.Latency
	fmt.Fprintf(tw, "latency\tp50 %s\tp90 %s\tp99 %s\tmax %s\tmean %s\n",
		fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.Max), fmtMS(l.Mean))
	fmt.Fprintf(tw, "distinct tokens\t%d\n", s.DistinctTokens)
	if s.Scenario == scenarioWellBehaved {
		fmt.Fprintf(tw, "token fetches\t%d\t(%d failed)\n", s.TokenFetches, s.TokenFetchErrors)
	}
	if b := s.Bystander; b != nil {
		fmt.Fprintf(tw, "bystanders\t%d requests\t2xx %d\t429 %d\tother %d\terrors %d\n", b.Requests, b.OK, b.Limited, b.Other, b.Errors)
	}
	for _, p := range []struct {
		name string
		ps   *ProcStats
	}{{"server", s.Server}, {"store", s.Store}, {"generator", s.Generator}} {
		if p.ps == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\n", p.name, procString(p.ps))
	}
	if len(s.Verdict) == 0 {
		fmt.Fprintf(tw, "checks\tpassed\n")
	}
	for _, v := range s.Verdict {
		fmt.Fprintf(tw, "check failed\t%s\n", v)
	}
	tw.Flush()
}

func procString(p *ProcStats) string {
	if p.CPUSeconds == 0 && p.Error != "" {
		return "not sampled: " + p.Error
	}
	return fmt.Sprintf("%.1f CPU-s, %.4f CPU-s per 1k requests, %.2f cores avg, peak RSS %.1f MiB (%s)",
		p.CPUSeconds, p.CPUPer1k, p.AvgCores, mib(p.PeakRSSBytes), p.Source)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func codesString(codes map[string]int64) string {
	var parts []string
	for code, n := range codes {
		if code == "error" || strings.HasPrefix(code, "2") || code == "429" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s×%d", code, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func errorsString(errs map[string]int64) string {
	var parts []string
	for e, n := range errs {
		parts = append(parts, fmt.Sprintf("%q×%d", e, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// fmtMS formats milliseconds with three significant digits.
func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return fmt.Sprintf("%.3fms", v)
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 100:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.0fms", v)
	}
}

// writeJSONFile writes v as indented JSON.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// readJSONFile decodes the JSON file at path into v.
func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// line is one series of a chart panel.
type line struct {
	Label string
	Color string
	Dash  bool
	X, Y  []float64
}

// panel is one chart: x is seconds, y is Unit on a linear or log scale.
type panel struct {
	Title string
	Unit  string
	Log   bool
	Lines []line
}

// palette is the line colours, in order.
func palette(i int) string {
	p := [...]string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22", "#000000", "#aec7e8"}
	return p[i%len(p)]
}

// renderSVG draws panels stacked vertically as one self-contained SVG.
func renderSVG(panels []panel, width int) string {
	const (
		ph    = 230 // panel height without extra legend rows
		left  = 64
		right = 16
		bot   = 34
		lrow  = 15 // legend row height
	)
	// Lay the legends out first: entries wrap onto more rows when they do
	// not fit, and each extra row makes its panel taller.
	type entry struct{ x, row float64 }
	legends := make([][]entry, len(panels))
	heights := make([]float64, len(panels))
	total := 0.0
	for pi, p := range panels {
		lx, row := float64(left), 0.0
		for _, l := range p.Lines {
			w := 28 + 6.2*float64(len(l.Label))
			if lx+w > float64(width-right) && lx > float64(left) {
				lx, row = float64(left), row+1
			}
			legends[pi] = append(legends[pi], entry{lx, row})
			lx += w
		}
		heights[pi] = ph + row*lrow
		total += heights[pi]
	}
	var b strings.Builder
	height := int(total)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", width, height)
	xmax := 1.0
	for _, p := range panels {
		for _, l := range p.Lines {
			for _, x := range l.X {
				xmax = max(xmax, x)
			}
		}
	}
	xstep := niceStep(xmax / 12)
	xmax = math.Ceil(xmax/xstep-1e-9) * xstep
	pw := float64(width - left - right)
	y0 := 0.0
	for pi, p := range panels {
		rows := 1.0
		for _, en := range legends[pi] {
			rows = max(rows, en.row+1)
		}
		plotTop, plotBot := y0+30+rows*lrow, y0+heights[pi]-bot
		phh := plotBot - plotTop
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" font-size="13" font-weight="bold">%s</text>`+"\n", left, y0+16, html.EscapeString(p.Title))
		for li, l := range p.Lines {
			en := legends[pi][li]
			ly := y0 + 30 + en.row*lrow
			dash := ""
			if l.Dash {
				dash = ` stroke-dasharray="4 3"`
			}
			fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"%s/>`,
				en.x, ly, en.x+16, ly, l.Color, dash)
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s</text>`+"\n", en.x+20, ly+4, html.EscapeString(l.Label))
		}
		// y range
		ymin, ymax := math.Inf(1), 0.0
		for _, l := range p.Lines {
			for _, y := range l.Y {
				if y > 0 {
					ymin = math.Min(ymin, y)
				}
				ymax = math.Max(ymax, y)
			}
		}
		if ymax <= 0 {
			ymax, ymin = 1, 0.1
		}
		var ticks []float64
		var ypos func(float64) float64
		if p.Log {
			lo := math.Pow(10, math.Floor(math.Log10(ymin)))
			hi := math.Pow(10, math.Ceil(math.Log10(ymax)))
			if hi <= lo {
				hi = lo * 10
			}
			for t := lo; t <= hi*1.0001; t *= 10 {
				ticks = append(ticks, t)
			}
			llo, lhi := math.Log10(lo), math.Log10(hi)
			ypos = func(v float64) float64 {
				if v <= lo {
					return plotBot
				}
				return plotBot - (math.Log10(v)-llo)/(lhi-llo)*phh
			}
		} else {
			hi := niceCeil(ymax * 1.05)
			step := niceStep(hi / 5)
			for t := 0.0; t <= hi*1.0001; t += step {
				ticks = append(ticks, t)
			}
			ypos = func(v float64) float64 { return plotBot - v/hi*phh }
		}
		xpos := func(v float64) float64 { return float64(left) + v/xmax*pw }
		for _, t := range ticks {
			y := ypos(t)
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>`, left, y, width-right, y)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-4, y+4, tickLabel(t))
		}
		for t := 0.0; t <= xmax*1.0001; t += xstep {
			x := xpos(t)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#f0f0f0"/>`, x, plotTop, x, plotBot)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, plotBot+14, tickLabel(t))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#555">seconds</text>`, width-right, plotBot+28)
		fmt.Fprintf(&b, `<text x="12" y="%.1f" transform="rotate(-90 12 %.1f)" text-anchor="middle" fill="#555">%s</text>`+"\n",
			(plotTop+plotBot)/2, (plotTop+plotBot)/2, html.EscapeString(p.Unit))
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.0f" height="%.1f" fill="none" stroke="#999"/>`+"\n", left, plotTop, pw, phh)
		for _, l := range p.Lines {
			if len(l.X) == 0 {
				continue
			}
			var pts strings.Builder
			for i := range l.X {
				if i >= len(l.Y) || (p.Log && l.Y[i] <= 0) {
					continue
				}
				fmt.Fprintf(&pts, "%.1f,%.1f ", xpos(l.X[i]), ypos(l.Y[i]))
			}
			dash := ""
			if l.Dash {
				dash = ` stroke-dasharray="4 3"`
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6"%s points="%s"/>`+"\n",
				l.Color, dash, strings.TrimSpace(pts.String()))
		}
		y0 += heights[pi]
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// niceStep rounds v to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	switch m := v / p; {
	case m < 1.5:
		return p
	case m < 3.5:
		return 2 * p
	case m < 7.5:
		return 5 * p
	default:
		return 10 * p
	}
}

func tickLabel(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1e6:
		return trimZero(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case v >= 1e4:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case v >= 1:
		return trimZero(fmt.Sprintf("%.1f", v))
	default:
		return trimZero(fmt.Sprintf("%.3f", v))
	}
}

func trimZero(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// runPanels are the charts of one attack: throughput, latency percentiles
// and, when sampled, the server's CPU.
func runPanels(s *Summary) []panel {
	var x, total, ok, lim, p50, p90, p99 []float64
	for _, p := range s.Series {
		if p.Partial {
			continue
		}
		t := float64(p.T) + 1
		x = append(x, t)
		total = append(total, float64(p.Requests))
		ok = append(ok, float64(p.OK))
		lim = append(lim, float64(p.Limited))
		p50 = append(p50, p.P50)
		p90 = append(p90, p.P90)
		p99 = append(p99, p.P99)
	}
	tp := panel{Title: "Throughput (1 s buckets)", Unit: "requests/s", Lines: []line{
		{Label: "all", Color: palette(0), X: x, Y: total},
		{Label: "2xx", Color: palette(2), Dash: true, X: x, Y: ok},
	}}
	if s.Limited > 0 {
		tp.Lines = append(tp.Lines, line{Label: "429", Color: palette(1), X: x, Y: lim})
	}
	panels := []panel{tp, {Title: "Latency percentiles (1 s buckets)", Unit: "ms (log)", Log: true, Lines: []line{
		{Label: "p50", Color: palette(2), X: x, Y: p50},
		{Label: "p90", Color: palette(3), X: x, Y: p90},
		{Label: "p99", Color: palette(1), X: x, Y: p99},
	}}}
	cpu := panel{Title: "CPU (cores)", Unit: "cores"}
	for i, p := range []struct {
		name string
		ps   *ProcStats
	}{{"server", s.Server}, {"store", s.Store}, {"load generator", s.Generator}} {
		if p.ps == nil || len(p.ps.Points) == 0 {
			continue
		}
		var px, py []float64
		for _, pt := range p.ps.Points {
			px = append(px, pt.T)
			py = append(py, pt.Cores)
		}
		cpu.Lines = append(cpu.Lines, line{Label: p.name, Color: palette(4 + i), Dash: p.name == "load generator", X: px, Y: py})
	}
	if ox, oy := otherSeries(s); len(ox) > 0 {
		cpu.Lines = append(cpu.Lines, line{Label: "other processes", Color: palette(8), Dash: true, X: ox, Y: oy})
	}
	if len(cpu.Lines) > 0 {
		panels = append(panels, cpu)
	}
	return panels
}

const htmlHead = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>
body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:12px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}
th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
pre{background:#f8f8f8;padding:8px;overflow:auto;font-size:12px}
.bad{color:#b00}
</style></head><body>
`

// writeRunHTML writes a self-contained report of one attack: no scripts,
// no external resources, the charts inline as SVG.
func writeRunHTML(path string, s *Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, htmlHead, html.EscapeString("tokengw load test: "+s.Name))
	fmt.Fprintf(&b, "<h1>%s</h1>\n", html.EscapeString(s.Name))
	fmt.Fprintf(&b, "<p>scenario <b>%s</b>, target %s, %d workers, rate %s, %d consumers, %.1f s, started %s</p>\n",
		html.EscapeString(s.Scenario), html.EscapeString(s.Target), s.Concurrency, rateString(s.Rate), s.Consumers,
		s.Seconds, s.Started.Format("2006-01-02 15:04:05 MST"))
	if s.Command != "" {
		fmt.Fprintf(&b, "<pre>%s</pre>\n", html.EscapeString(s.Command))
	}
	var txt strings.Builder
	writeSummaryText(&txt, s)
	fmt.Fprintf(&b, "<pre>%s</pre>\n", html.EscapeString(txt.String()))
	b.WriteString(renderSVG(runPanels(s), 1000))
	writeSeriesTable(&b, s)
	b.WriteString("</body></html>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func writeSeriesTable(b *strings.Builder, s *Summary) {
	b.WriteString("<details><summary>per-second data</summary><table><tr><th>s</th><th>requests</th><th>2xx</th><th>429</th><th>other</th><th>errors</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>\n")
	for _, p := range s.Series {
		mark := ""
		if p.Partial {
			mark = " (partial)"
		}
		fmt.Fprintf(b, "<tr><td>%d%s</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td></tr>\n",
			p.T, mark, p.Requests, p.OK, p.Limited, p.Other, p.Errors, p.P50, p.P90, p.P99, p.Max)
	}
	b.WriteString("</table></details>\n")
}

// otherSeries is, per sampling interval, the CPU the rest of the machine
// used: the machine's busy cores minus the server's, the store's and the
// generator's (matched by the second they end in).
func otherSeries(s *Summary) (x, y []float64) {
	if s.Machine == nil {
		return nil, nil
	}
	minus := map[int]float64{}
	for _, ps := range []*ProcStats{s.Server, s.Store, s.Generator} {
		if ps == nil {
			continue
		}
		for _, p := range ps.Points {
			minus[int(math.Round(p.T))] += p.Cores
		}
	}
	for _, p := range s.Machine.Points {
		x = append(x, p.T)
		y = append(y, max(p.Cores-minus[int(math.Round(p.T))], 0))
	}
	return x, y
}
