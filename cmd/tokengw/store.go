package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store/bolt"
)

const storeUsage = `usage: tokengw store <command> [flags]

Check and back up the embedded (bolt) store's file.

commands:
  check --config FILE [--file PATH]
        run bbolt's consistency check on store.bolt.path (or on PATH, e.g. a backup);
        the file is opened read-only, so a running server (which locks it) must be
        stopped first, or check a backup instead
  backup --config FILE --out PATH
        write a consistent copy of the store's file to PATH (which must not exist),
        then check it; from the file when no server runs on it, otherwise through
        the running server's admin API (POST /admin/store/backup on
        server.admin_addr, with server.admin_token)
`

// backupRoute is the admin API route that streams a backup of the bolt
// store (bolt.BackupHandler).
const backupRoute = "/admin/store/backup"

// storeLockWait is how long the CLI waits for the file lock before it
// takes the file for a running server's.
const storeLockWait = time.Second

// storeCmd runs `tokengw store ...`.
func storeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, storeUsage)
		return flag.ErrHelp
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("store "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, storeUsage) }
	cfgPath := fs.String("config", "", "YAML config file (env TOKENGW_* overrides every key)")
	var file, out *string
	switch cmd {
	case "check":
		file = fs.String("file", "", "check this bolt file instead of store.bolt.path (no config needed)")
	case "backup":
		out = fs.String("out", "", "where to write the copy (must not exist)")
	default:
		fmt.Fprintf(stderr, "tokengw store: unknown command %q\n\n%s", cmd, storeUsage)
		return flag.ErrHelp
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("store %s: unexpected argument %q", cmd, fs.Arg(0))
	}
	if cmd == "check" && *file != "" {
		return storeCheck(ctx, *file, stdout)
	}
	cfg, err := config.Load(*cfgPath, nil)
	if err != nil {
		return err
	}
	if cfg.Store.Driver != "bolt" {
		return fmt.Errorf("store %s: store.driver is %s: this command is for the embedded (bolt) store", cmd, cfg.Store.Driver)
	}
	if cmd == "check" {
		return storeCheck(ctx, cfg.Store.Bolt.Path, stdout)
	}
	if *out == "" {
		return errors.New("store backup: --out PATH is required")
	}
	return storeBackup(ctx, cfg, *out, stdout)
}

// storeCheck checks the bolt file at path.
func storeCheck(ctx context.Context, path string, stdout io.Writer) error {
	err := bolt.CheckFile(ctx, path, storeLockWait)
	if errors.Is(err, bolt.ErrLocked) {
		return fmt.Errorf("store check: %s is locked by another process, most likely a running `tokengw serve`: "+
			"stop it, or check a copy: tokengw store backup --config FILE --out COPY && tokengw store check --file COPY", path)
	}
	if err != nil {
		return fmt.Errorf("store check: %w", err)
	}
	fmt.Fprintf(stdout, "store check: %s: ok\n", path)
	return nil
}

// storeBackup writes a copy of the store's file to out: into a temporary
// file beside it, synced and checked, then renamed, so that out is either
// a whole, checked copy or absent.
func storeBackup(ctx context.Context, cfg *config.Config, out string, stdout io.Writer) (err error) {
	src := cfg.Store.Bolt.Path
	if same, _ := samePath(src, out); same {
		return fmt.Errorf("store backup: --out %s is the store's own file", out)
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("store backup: %s exists: choose another --out or remove it", out)
	}
	name := out + ".partial"
	tmp, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("store backup: %w", err)
	}
	defer func() {
		if tmp != nil {
			_ = tmp.Close()
		}
		if err != nil {
			_ = os.Remove(name)
		}
	}()

	from := "from " + src
	n, err := bolt.BackupFile(ctx, src, tmp, storeLockWait)
	if errors.Is(err, bolt.ErrLocked) {
		from = "through the admin API of the server running on " + src
		if terr := tmp.Truncate(0); terr != nil {
			return fmt.Errorf("store backup: %w", terr)
		}
		if _, serr := tmp.Seek(0, io.SeekStart); serr != nil {
			return fmt.Errorf("store backup: %w", serr)
		}
		n, err = backupFromServer(ctx, cfg, tmp)
	}
	if err != nil {
		return fmt.Errorf("store backup: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("store backup: %w", err)
	}
	cerr := tmp.Close()
	tmp = nil
	if cerr != nil {
		return fmt.Errorf("store backup: %w", cerr)
	}
	if err := bolt.CheckFile(ctx, name, storeLockWait); err != nil {
		return fmt.Errorf("store backup: the copy does not pass the check: %w", err)
	}
	if err := os.Rename(name, out); err != nil {
		return fmt.Errorf("store backup: %w", err)
	}
	if d, err := os.Open(filepath.Dir(out)); err == nil { // make the rename durable
		_ = d.Sync()
		_ = d.Close()
	}
	fmt.Fprintf(stdout, "store backup: wrote %d bytes to %s (%s); the copy passes the check\n", n, out, from)
	if len(cfg.Store.SealKeys) == 0 {
		fmt.Fprintf(stdout, "store backup: the reuse copies in it are sealed with %s (store.seal_keys is empty): "+
			"keep a copy of that file with the backup; it does not change\n", filepath.Join(filepath.Dir(src), "seal.key"))
	}
	return nil
}

// samePath reports whether a and b name one file (b may not exist yet).
func samePath(a, b string) (bool, error) {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(fa, fb), nil
	}
	absA, err := filepath.Abs(a)
	if err != nil {
		return false, err
	}
	absB, err := filepath.Abs(b)
	if err != nil {
		return false, err
	}
	return absA == absB, nil
}

// backupFromServer streams a backup from the running server's admin API
// into w: POST {server.admin_addr}/admin/store/backup with the admin token.
func backupFromServer(ctx context.Context, cfg *config.Config, w io.Writer) (int64, error) {
	addr, token := cfg.Server.AdminAddr, cfg.Server.AdminToken
	locked := fmt.Sprintf("%s is locked by another process, most likely a running `tokengw serve`", cfg.Store.Bolt.Path)
	if addr == "" {
		return 0, fmt.Errorf("%s, and server.admin_addr is empty, so its admin API cannot be asked: stop the server to back up the file", locked)
	}
	if token == "" {
		return 0, fmt.Errorf("%s, and server.admin_token is not set, so its admin API is off: stop the server to back up the file, "+
			"or restart it with an admin token", locked)
	}
	url := "http://" + dialAddr(addr) + backupRoute
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	// No overall timeout (a large file takes its time; Ctrl-C stops it),
	// but a server that does not start answering is not waited for.
	client := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 30 * time.Second}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s, and its admin API did not answer: %w", locked, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return 0, fmt.Errorf("%s, and the server at %s has no %s (a server older than this CLI): stop it to back up the file", locked, addr, backupRoute)
	case http.StatusUnauthorized, http.StatusForbidden:
		return 0, fmt.Errorf("the server at %s refused server.admin_token (%s): the config's token is not the server's", addr, resp.Status)
	default:
		return 0, fmt.Errorf("the server at %s answered %s to %s", addr, resp.Status, backupRoute)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("the copy from %s broke off after %d bytes: %w", url, n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("the copy from %s has %d of its %d bytes", url, n, resp.ContentLength)
	}
	return n, nil
}

// dialAddr turns a listen address into one to dial: an unspecified host
// (":9090", "0.0.0.0:9090", "[::]:9090") is this machine's loopback.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if ip != nil && ip.To4() == nil {
			host = "::1"
		} else {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, port)
}
