package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/keyring"
	"github.com/tokengw/tokengw/internal/store/bolt"
)

const keysUsage = `usage: tokengw keys list|rotate --config FILE

Manage the JWT signing key ring kept in the store (issuer.token_format: jwt).
With the bolt store, stop the server first (it locks the file) or use the admin
API (POST /admin/keys/rotate on server.admin_addr, with server.admin_token).

commands:
  list --config FILE     list the keys: kid, algorithm, state and schedule
                         (an empty ring gets its first key, as at start-up)
  rotate --config FILE   add a new key: published now, signing once every
                         replica and every JWKS cache has it (jwks_max_age + 20s)
`

// keys runs `tokengw keys ...`.
func keys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, keysUsage)
		return flag.ErrHelp
	}
	cmd := args[0]
	if cmd != "list" && cmd != "rotate" {
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("keys: unknown command %q", cmd)
	}
	path, err := configFlag("keys "+cmd, args[1:], stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		return err
	}
	if cfg.Store.Driver == "memory" {
		return errors.New("keys: store.driver is memory, which lives inside one server process: use POST /admin/keys/rotate")
	}
	st, err := app.OpenStore(ctx, cfg, nil)
	if errors.Is(err, bolt.ErrLocked) {
		return fmt.Errorf("keys: the store file %s is locked by another process, most likely a running `tokengw serve`: "+
			"stop it first, or use POST /admin/keys/rotate on its admin listener", cfg.Store.Bolt.Path)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	ring, err := app.NewKeyRing(ctx, cfg, st, time.Now, nil)
	if err != nil {
		return err
	}
	if cmd == "rotate" {
		k, err := ring.Rotate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added key %s (%s): published now, signs from %s\n", k.ID, k.Alg, k.ActivateAt.UTC().Format(time.RFC3339))
	}
	printKeys(stdout, ring.Keys(), time.Now())
	return nil
}

func printKeys(w io.Writer, keys []*keyring.Key, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tACTIVATE_AT\tRETIRE_AT\tUNPUBLISH_AT\tUSABLE")
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", k.ID, k.Alg, k.State(now), ts(k.ActivateAt), ts(k.RetireAt), ts(k.RemoveAt), k.Usable)
	}
	_ = tw.Flush()
}
