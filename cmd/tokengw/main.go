// Command tokengw is an OAuth2 token endpoint that hands a client_credentials
// consumer its still-live token instead of minting a new one per call.
//
//	tokengw serve --config FILE       serve the token endpoint
//	tokengw migrate --config FILE     create the store's schema (idempotent)
//	tokengw hash-secret               read a secret on stdin, print its PHC hash
//	tokengw client add|list|remove|rotate-secret --config FILE
//	                                  manage the clients kept in the store
//	tokengw store check|backup --config FILE
//	                                  check or back up the embedded store's file
//	tokengw keys list|rotate --config FILE
//	                                  the JWT signing key ring
//	tokengw version                   print the version
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/config"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `usage: tokengw <command> [flags]

commands:
  serve --config FILE     serve the token endpoint until SIGINT/SIGTERM
  migrate --config FILE   create the store's schema (idempotent)
  hash-secret             read a client secret on stdin, print its PHC hash (argon2id)
  client add|list|remove|rotate-secret --config FILE
                          manage the clients kept in the store (tokengw client help)
  store check|backup --config FILE
                          check or back up the embedded store's file (tokengw store help)
  keys list|rotate --config FILE
                          list or rotate the JWT signing keys (tokengw keys help)
  version                 print the version

Every config key can be overridden by an environment variable:
TOKENGW_ + the key path in upper case with __ between levels (TOKENGW_REUSE__ENABLED=false).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "migrate":
		err = migrate(ctx, args[1:], stdout, stderr)
	case "hash-secret":
		err = hashSecret(stdin, stdout)
	case "client":
		err = client(ctx, args[1:], stdout, stderr)
	case "store":
		err = storeCmd(ctx, args[1:], stdout, stderr)
	case "keys":
		err = keys(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "tokengw", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "tokengw: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintln(stderr, "tokengw:", err)
		return 1
	}
	return 0
}

func configFlag(name string, args []string, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "YAML config file (env TOKENGW_* overrides every key)")
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	return *path, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	path, err := configFlag("serve", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		return err
	}
	logger := app.NewLogger(cfg.Log, os.Stderr)
	a, err := app.New(ctx, cfg, app.Options{Logger: logger})
	if err != nil {
		return err
	}
	serveErr := a.Serve(ctx)
	closeErr := a.Close()
	if serveErr == nil && closeErr == nil {
		logger.Info("stopped")
	}
	return errors.Join(serveErr, closeErr)
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("migrate", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		return err
	}
	if err := app.Migrate(ctx, cfg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "migrated the %s store\n", cfg.Store.Driver)
	return nil
}

// hashSecret reads one secret (the first line; a trailing newline is not
// part of it) and prints its argon2id PHC hash.
func hashSecret(stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("hash-secret: %w", err)
	}
	secret := strings.TrimRight(line, "\r\n")
	if secret == "" {
		return errors.New("hash-secret: empty secret on stdin")
	}
	h, err := clientauth.HashSecret(secret, clientauth.DefaultArgon2Params)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, h)
	return nil
}
