// Command loadtest is tokengw's load-test kit: a runner built on the vegeta
// library (its attacker, with a targeter per scenario), the reference
// server, and the experiment driver behind `make loadtest` and
// docs/benchmarks.md.
//
//	go run ./loadtest [run] --target URL --credentials FILE [flags]   attack a token endpoint
//	go run ./loadtest --serve-reference ADDR --credentials FILE       serve the reference endpoint
//	go run ./loadtest experiment [flags]                              the reference experiment
//	go run ./loadtest clients --count N [flags]                       make consumers for a config
//	go run ./loadtest report --results DIR [--doc FILE]               re-render reports from JSON
//	go run ./loadtest headline [flags]                                wrk: reference, tokengw, Keycloak, ORY Hydra
//
// The runner's scenarios are the k6 scripts' (loadtest/k6): abusive (a new
// token request on every call), well-behaved (each consumer's token cached
// until most of its expires_in has passed), many-consumers (the abusive
// client over many consumers) and rate-limit (one consumer hammering, others
// calling slowly: the first must get 429 with Retry-After, the others
// never). It prints progress while it runs and a summary table at the end
// (requests/s, 2xx/429/other counts, p50/p90/p99/max latency, distinct
// tokens seen), writes a JSON summary and a self-contained HTML report with
// the throughput and latency percentiles over time in 1 s buckets, and, with
// --server-pid (Linux /proc) or --server-metrics (Prometheus), reports the
// server's CPU-seconds per 1,000 requests and peak RSS.
//
// The reference server is a bare net/http handler that reads the form,
// checks HTTP Basic client authentication and writes a fixed token JSON:
// the ceiling for any token endpoint on the machine. The experiment driver
// builds bin/tokengw, and for each configuration starts a fresh server
// (fresh store, a generated config with N clients), attacks it, stops it,
// counts the tokens the store persisted and writes the results (JSON,
// markdown tables, an SVG chart) into loadtest/results and
// docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: go run ./loadtest [command] [flags]

commands:
  run          attack a token endpoint (the default command)
  experiment   the reference experiment: fresh tokengw servers and the reference server,
               reuse on/off x consumers x stores; writes loadtest/results and docs/benchmarks.md
  clients      generate consumers: a credentials file and a tokengw config with their hashes
  report       re-render reports from JSON: a run's summary (--json, --html) or an experiment's
               results directory (--results, --doc)
  headline     the headline table: wrk -t2 -c64 10s against the reference, tokengw reuse on/off
               (bolt), Keycloak and ORY Hydra; replaces the headline section of docs/benchmarks.md
  help         this text

go run ./loadtest <command> --help lists a command's flags. The run flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// dispatch is main without the process: it returns the exit code (0 ok,
// 1 error, 2 usage, 3 the attack ran but failed its checks).
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = runCommand(ctx, args, stdout, stderr)
	case "experiment":
		err = experimentCommand(ctx, args, stdout, stderr)
	case "clients":
		err = clientsCommand(args, stdout, stderr)
	case "report":
		err = reportCommand(args, stdout, stderr)
	case "headline":
		err = headlineCommand(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		fs, _ := runFlags(io.Discard)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	default:
		fmt.Fprintf(stderr, "loadtest: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var failed *checksFailedError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &failed):
		fmt.Fprintln(stderr, "loadtest:", err)
		return 3
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "loadtest:", err)
		return 1
	}
}

// errUsage marks a bad command line.
var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// checksFailedError is an attack that ran to the end but failed its checks.
type checksFailedError struct{ checks []string }

func (e *checksFailedError) Error() string {
	return "checks failed: " + strings.Join(e.checks, "; ")
}

// runOptions are the run command's flags.
type runOptions struct {
	name, scenario, target, tokenPath, apiURL, scope string
	consumers, concurrency, rate, bystanderRate      int
	duration, timeout, progress, sampleEvery         time.Duration
	maxRequests                                      int64
	refreshAt                                        float64
	warmup                                           bool

	credentials, adminURL, adminToken, clientPrefix, adminScopes, credentialsOut string

	serverPid, storePid int
	serverMetrics       string

	jsonOut, htmlOut string

	serveReference string
	serveFor       time.Duration
}

func runFlags(stderr io.Writer) (*flag.FlagSet, *runOptions) {
	o := &runOptions{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.name, "name", "", "name of the attack in reports (default: the scenario)")
	fs.StringVar(&o.scenario, "scenario", scenarioAbusive, "scenario: "+strings.Join(scenarioNames(), ", "))
	fs.StringVar(&o.target, "target", "http://127.0.0.1:8080", "base URL of the server under test")
	fs.StringVar(&o.tokenPath, "token-path", "/oauth2/token", "token endpoint path below --target")
	fs.StringVar(&o.apiURL, "api-url", "", "well-behaved: the protected API call made with the cached token (default --target + /healthz)")
	fs.StringVar(&o.scope, "scope", "", "scope parameter of token requests (default: none, i.e. all of the client's scopes)")
	fs.IntVar(&o.consumers, "consumers", 0, "consumers to use: the first N of --credentials (0 = all), or N to create via --admin-url (0 = 1; many-consumers 50, rate-limit 3)")
	fs.IntVar(&o.concurrency, "concurrency", 50, "concurrent workers (connections)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long the attack lasts")
	fs.IntVar(&o.rate, "rate", 0, "requests per second; 0 = as fast as --concurrency workers go")
	fs.Int64Var(&o.maxRequests, "max-requests", 50_000_000, "stop after this many requests even if --duration has not passed")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.BoolVar(&o.warmup, "warmup", true, "one token request per consumer before the attack (warms the server's caches, fails fast on bad credentials)")
	fs.DurationVar(&o.progress, "progress", 5*time.Second, "progress line interval (0 = none)")
	fs.Float64Var(&o.refreshAt, "refresh-at", 0.9, "well-behaved: refresh a token after this fraction of its expires_in")
	fs.IntVar(&o.bystanderRate, "bystander-rate", 2, "rate-limit: the bystander consumers' total rate, requests/s")
	fs.StringVar(&o.credentials, "credentials", "", "credentials file: JSON [{\"id\",\"secret\"}] or CSV id,secret")
	fs.StringVar(&o.adminURL, "admin-url", "", "create --consumers consumers through tokengw's admin API at this base URL (server.admin_addr) instead of reading --credentials")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer token of the admin API (default $LOADTEST_ADMIN_TOKEN)")
	fs.StringVar(&o.clientPrefix, "client-prefix", "", "admin API: id prefix of created consumers (default lt-<random>-)")
	fs.StringVar(&o.adminScopes, "client-scopes", "read,write", "admin API: comma-separated scopes of created consumers")
	fs.StringVar(&o.credentialsOut, "credentials-out", "", "admin API: write the created credentials here (.csv or .json)")
	fs.IntVar(&o.serverPid, "server-pid", 0, "sample this process's CPU time and RSS from /proc (Linux)")
	fs.StringVar(&o.serverMetrics, "server-metrics", "", "sample process_cpu_seconds_total and process_resident_memory_bytes from this Prometheus URL")
	fs.IntVar(&o.storePid, "store-pid", 0, "also sample the store's process (e.g. Cassandra's JVM) from /proc")
	fs.DurationVar(&o.sampleEvery, "sample-interval", time.Second, "process sampling interval")
	fs.StringVar(&o.jsonOut, "json", "", "write the JSON summary here")
	fs.StringVar(&o.htmlOut, "html", "", "write the self-contained HTML report here")
	fs.StringVar(&o.serveReference, "serve-reference", "", "serve the reference token endpoint on this address (e.g. 127.0.0.1:18081) with --credentials instead of attacking")
	fs.DurationVar(&o.serveFor, "serve-for", 0, "with --serve-reference: stop after this long (0 = until SIGINT/SIGTERM)")
	return fs, o
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, o := runFlags(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if o.serveReference != "" {
		if o.credentials == "" {
			return usageErr("--serve-reference needs --credentials")
		}
		creds, err := loadCredentials(o.credentials)
		if err != nil {
			return err
		}
		return serveReference(ctx, o.serveReference, creds, o.serveFor, stderr)
	}

	creds, err := o.consumerCredentials(ctx, stderr)
	if err != nil {
		return err
	}
	cfg := runConfig{
		Name: o.name, Scenario: o.scenario, Target: o.target, TokenPath: o.tokenPath, APIURL: o.apiURL,
		Scope: o.scope, Creds: creds, Concurrency: o.concurrency, Rate: o.rate, Duration: o.duration,
		MaxRequests: o.maxRequests, Timeout: o.timeout, Warmup: o.warmup, Progress: o.progress, Log: stderr,
		BystanderRate: o.bystanderRate, RefreshAt: o.refreshAt, SampleInterval: o.sampleEvery,
		Command: commandLine(append([]string{"go", "-C", "loadtest", "run", ".", "run"}, args...)),
	}
	if cfg.Name == "" {
		cfg.Name = o.scenario
	}
	switch {
	case o.serverPid > 0:
		cfg.Server = procSampler{root: "/proc", pid: o.serverPid}
	case o.serverMetrics != "":
		cfg.Server = metricsSampler{url: o.serverMetrics, client: &http.Client{Timeout: 2 * time.Second}}
	}
	if o.storePid > 0 {
		cfg.Store = procSampler{root: "/proc", pid: o.storePid}
	}
	sum, err := Run(ctx, cfg)
	if sum == nil {
		return err
	}
	fmt.Fprintln(stdout)
	writeSummaryText(stdout, sum)
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("interrupted: %w", err))
	}
	if o.jsonOut != "" {
		errs = append(errs, writeJSONFile(o.jsonOut, sum))
	}
	if o.htmlOut != "" {
		errs = append(errs, writeRunHTML(o.htmlOut, sum))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(sum.Verdict) > 0 {
		return &checksFailedError{checks: sum.Verdict}
	}
	return nil
}

// consumerCredentials reads --credentials or creates consumers through the
// admin API.
func (o *runOptions) consumerCredentials(ctx context.Context, logw io.Writer) ([]Credential, error) {
	switch {
	case o.credentials != "" && o.adminURL != "":
		return nil, usageErr("--credentials and --admin-url are alternatives")
	case o.credentials != "":
		creds, err := loadCredentials(o.credentials)
		if err != nil {
			return nil, err
		}
		if o.consumers > 0 {
			if o.consumers > len(creds) {
				return nil, fmt.Errorf("--consumers %d: %s holds only %d", o.consumers, o.credentials, len(creds))
			}
			creds = creds[:o.consumers]
		}
		return creds, nil
	case o.adminURL != "":
		n := o.consumers
		if n == 0 {
			switch o.scenario {
			case scenarioMany:
				n = 50
			case scenarioRateLimit:
				n = 3
			default:
				n = 1
			}
		}
		token := o.adminToken
		if token == "" {
			token = os.Getenv("LOADTEST_ADMIN_TOKEN")
		}
		if token == "" {
			return nil, usageErr("--admin-url needs --admin-token or $LOADTEST_ADMIN_TOKEN")
		}
		prefix := o.clientPrefix
		if prefix == "" {
			prefix = "lt-" + strings.ToLower(randomString(4)) + "-"
		}
		a := adminClient{base: o.adminURL, token: token, client: &http.Client{Timeout: o.timeout}}
		fmt.Fprintf(logw, "creating %d consumers %s1..%s%d through %s/admin/clients\n", n, prefix, prefix, n, o.adminURL)
		creds, err := a.create(ctx, n, prefix, splitList(o.adminScopes))
		if err != nil {
			return nil, err
		}
		if o.credentialsOut != "" {
			if err := writeCredentials(o.credentialsOut, creds); err != nil {
				return nil, err
			}
		}
		return creds, nil
	default:
		return nil, usageErr("give --credentials FILE or --admin-url URL (see --help)")
	}
}

// secretFlags are the flags whose values commandLine redacts.
var secretFlags = []string{"admin-token", "keycloak-secret", "hydra-secret"}

// commandLine renders args as a shell command, with the admin token and
// the peers' client secrets redacted.
func commandLine(args []string) string {
	out := make([]string, len(args))
	redact := false
	for i, a := range args {
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case redact:
			a, redact = "REDACTED", false
		case !strings.HasPrefix(a, "-") || !slices.Contains(secretFlags, name):
		case hasValue:
			a = a[:strings.IndexByte(a, '=')+1] + "REDACTED"
		default:
			redact = true
		}
		out[i] = shellQuote(a)
	}
	return strings.Join(out, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func splitInts(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", p)
		}
		out = append(out, n)
	}
	return out, nil
}

// clientsCommand generates consumers: a credentials file for the runner and
// the k6 scripts, and a tokengw config whose clients section holds their
// argon2id hashes.
func clientsCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("clients", flag.ContinueOnError)
	fs.SetOutput(stderr)
	count := fs.Int("count", 50, "how many consumers")
	prefix := fs.String("prefix", "lt-", "id prefix: consumers are PREFIX1..PREFIXN")
	scopes := fs.String("scopes", "read,write", "comma-separated scopes of every consumer")
	credsOut := fs.String("credentials-out", "loadtest-credentials.json", "credentials file to write (.json or .csv); it holds secrets")
	configOut := fs.String("config-out", "loadtest-clients.yaml", "tokengw config to write: only the clients section, every other key at its default (override with TOKENGW_* variables)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *count < 1 || *count > 100000 {
		return usageErr("--count must be between 1 and 100000")
	}
	creds := generateCredentials(*count, *prefix)
	yaml, err := clientsYAML(creds, splitList(*scopes), defaultHashParams())
	if err != nil {
		return err
	}
	if err := writeCredentials(*credsOut, creds); err != nil {
		return err
	}
	header := "# generated by `go run ./loadtest clients`: load-test consumers (secrets in " + filepath.Base(*credsOut) + ")\n"
	if err := os.WriteFile(*configOut, []byte(header+yaml), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d consumers: credentials %s, config %s\n", len(creds), *credsOut, *configOut)
	return nil
}

// reportCommand re-renders reports from their JSON: one run's HTML from its
// summary, or an experiment's markdown, charts, HTML and document section
// from its results.json (after a change to the report format, without
// running the experiment again).
func reportCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jsonIn := fs.String("json", "", "a run's JSON summary (from run --json)")
	htmlOut := fs.String("html", "", "with --json: the HTML report to write")
	results := fs.String("results", "", "an experiment's results directory (holding results.json)")
	doc := fs.String("doc", "", "with --results: the document whose generated section is replaced")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *jsonIn != "" && *htmlOut != "":
		var s Summary
		if err := readJSONFile(*jsonIn, &s); err != nil {
			return err
		}
		if err := writeRunHTML(*htmlOut, &s); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", *htmlOut)
		return nil
	case *results != "":
		var rep experimentReport
		if err := readJSONFile(filepath.Join(*results, "results.json"), &rep); err != nil {
			return err
		}
		e := &experiment{o: &experimentOptions{outDir: *results, doc: *doc}, log: stderr}
		for _, r := range rep.Results {
			if r.Summary != nil && r.Report != "" {
				if err := writeRunHTML(filepath.Join(*results, r.Report), r.Summary); err != nil {
					return err
				}
			}
		}
		if err := e.writeResults(&rep); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rewrote the reports in %s\n", *results)
		return nil
	default:
		return usageErr("report: give --json FILE --html FILE, or --results DIR [--doc FILE]")
	}
}
