package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/bolt"
)

const clientUsage = `usage: tokengw client <command> --config FILE [flags]

Manage the clients kept in the store (clients in the config file are read-only).
With the bolt store, stop the server first (it locks the file) or use the admin API.
Running servers see a change within auth.client_refresh (default 5s).

commands:
  add --config FILE --scopes "read write" [--id ID] [--token-ttl 30m] [--rate 10 --burst 20] [--introspect]
                                   add a client; prints its generated secret, once
  list --config FILE               list every client (never a secret or a hash)
  remove --config FILE ID          remove a client; its tokens stop being reused
  rotate-secret --config FILE ID   give a client a new secret (printed once); the old one stops working
`

// clientTimeout bounds each store operation of the CLI.
const clientTimeout = 30 * time.Second

// client runs `tokengw client ...`.
func client(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, clientUsage)
		return flag.ErrHelp
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("client "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, clientUsage) }
	path := fs.String("config", "", "YAML config file (env TOKENGW_* overrides every key)")
	var (
		id         = fs.String("id", "", "client id (add: default generated)")
		scopes     = fs.String("scopes", "", `space-delimited scopes the client may ask for ("read write")`)
		ttl        = fs.String("token-ttl", "", "token lifetime, Go duration (default issuer.token_ttl)")
		rate       = fs.Float64("rate", 0, "rate limit, requests per second (default limits.per_client; 0 = unlimited)")
		burst      = fs.Int("burst", 0, "rate limit burst (with --rate)")
		introspect = fs.Bool("introspect", false, "the client may call the introspection endpoint")
	)
	var wantArgs int
	switch cmd {
	case "add", "list":
	case "remove", "rotate-secret":
		wantArgs = 1
	default:
		fmt.Fprintf(stderr, "tokengw client: unknown command %q\n\n%s", cmd, clientUsage)
		return flag.ErrHelp
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cmd != "add" {
		for _, name := range []string{"id", "scopes", "token-ttl", "rate", "burst", "introspect"} {
			if set[name] {
				return fmt.Errorf("client %s: --%s is a flag of client add", cmd, name)
			}
		}
	}
	if len(pos) != wantArgs {
		if wantArgs == 1 {
			return fmt.Errorf("client %s: give the client id as the one argument (tokengw client %s --config FILE ID)", cmd, cmd)
		}
		return fmt.Errorf("client %s: unexpected argument %q", cmd, pos[0])
	}
	if *path == "" {
		return fmt.Errorf("client %s: --config FILE is required (the store is the one the server uses)", cmd)
	}

	cfg, err := config.Load(*path, nil)
	if err != nil {
		return err
	}
	m, closeStore, err := openClientManager(ctx, cfg)
	if err != nil {
		return fmt.Errorf("client %s: %w", cmd, err)
	}
	defer closeStore()

	switch cmd {
	case "add":
		spec := clients.Spec{ID: *id, Introspect: *introspect}
		if set["id"] && *id == "" {
			return errors.New("client add: --id must not be empty (omit it to have one generated)")
		}
		for _, s := range strings.Split(*scopes, " ") {
			if s != "" {
				spec.Scopes = append(spec.Scopes, s)
			}
		}
		if spec.TokenTTL, err = clients.ParseTokenTTL(*ttl); err != nil {
			return clientErr("add", *id, err)
		}
		if set["rate"] || set["burst"] {
			spec.Limit = &store.Limit{Rate: *rate, Burst: *burst}
		}
		info, secret, err := m.Create(ctx, spec)
		if err != nil {
			return clientErr("add", spec.ID, err)
		}
		printSecret(stdout, stderr, info.ID, secret)
	case "list":
		list, err := m.List(ctx)
		if err != nil {
			return clientErr("list", "", err)
		}
		printClients(stdout, list)
	case "remove":
		if err := m.Delete(ctx, pos[0]); err != nil {
			return clientErr("remove", pos[0], err)
		}
		fmt.Fprintf(stdout, "removed client %q\n", pos[0])
	case "rotate-secret":
		info, secret, err := m.RotateSecret(ctx, pos[0])
		if err != nil {
			return clientErr("rotate-secret", pos[0], err)
		}
		printSecret(stdout, stderr, info.ID, secret)
	}
	return nil
}

// parseInterspersed parses flags that may come after positional arguments
// ("remove ID --config FILE") and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// openClientManager opens the configured store for client management.
func openClientManager(ctx context.Context, cfg *config.Config) (*clients.Manager, func(), error) {
	if cfg.Store.Driver == "memory" {
		return nil, nil, errors.New("store.driver is memory, which lives inside one server process: " +
			"manage its clients through the admin API (/admin/clients on server.admin_addr)")
	}
	st, err := app.OpenStore(ctx, cfg, nil)
	if errors.Is(err, bolt.ErrLocked) {
		return nil, nil, fmt.Errorf("the store file %s is locked by another process, most likely a running `tokengw serve`: "+
			"stop it first, or manage clients through its admin API (/admin/clients on server.admin_addr, with server.admin_token)",
			cfg.Store.Bolt.Path)
	}
	if err != nil {
		return nil, nil, err
	}
	closeStore := func() { _ = st.Close() }
	reg, err := app.NewRegistry(cfg, st, nil)
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	m, err := clients.NewManager(clients.ManagerOptions{
		Registry: reg, Store: st, Argon2: cfg.Auth.Argon2.Params(), Timeout: clientTimeout,
	})
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	return m, closeStore, nil
}

// clientErr words a management error for the terminal.
func clientErr(cmd, id string, err error) error {
	var se *clients.SpecError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("client %s: %s", cmd, flagName(se))
	case errors.Is(err, clients.ErrReadOnly):
		return fmt.Errorf("client %s: client %q is defined in the config file (clients:) and is read-only here; change it in the file", cmd, id)
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("client %s: client %q exists already", cmd, id)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("client %s: no client %q in the store", cmd, id)
	}
	return fmt.Errorf("client %s: %w", cmd, err)
}

// flagName renames a SpecError's field to the flag that sets it.
func flagName(se *clients.SpecError) string {
	field := se.Field
	switch {
	case field == "id":
		field = "--id"
	case strings.HasPrefix(field, "scopes"):
		field = "--scopes"
	case field == "token_ttl":
		field = "--token-ttl"
	case field == "limit.rate":
		field = "--rate"
	case field == "limit.burst":
		field = "--burst"
	}
	return field + ": " + se.Msg
}

func printSecret(stdout, stderr io.Writer, id, secret string) {
	fmt.Fprintf(stdout, "client_id: %s\nclient_secret: %s\n", id, secret)
	fmt.Fprintln(stderr, "tokengw: the secret is shown only now; the store keeps only its hash.")
}

// printClients writes the client table: one row per client, no secrets.
func printClients(w io.Writer, list []clients.Info) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE\tSCOPES\tTOKEN_TTL\tLIMIT\tINTROSPECT\tCREATED")
	for _, c := range list {
		ttl, limit, created, intro := "default", "default", "-", "no"
		if c.TokenTTL != 0 {
			ttl = c.TokenTTL.String()
		}
		if c.Limit != nil {
			if c.Limit.Rate == 0 {
				limit = "unlimited"
			} else {
				limit = strconv.FormatFloat(c.Limit.Rate, 'g', -1, 64) + "/s burst " + strconv.Itoa(c.Limit.Burst)
			}
		}
		if !c.CreatedAt.IsZero() {
			created = c.CreatedAt.UTC().Format(time.RFC3339)
		}
		if c.Introspect {
			intro = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Source(), strings.Join(c.Scopes, " "), ttl, limit, intro, created)
	}
	_ = tw.Flush()
}
