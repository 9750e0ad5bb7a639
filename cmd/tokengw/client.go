package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/assertion"
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
      [--auth-method private_key_jwt (--jwks-file FILE | --jwks-uri URL)] [--resource URI ...]
                                   add a client; prints its generated secret, once
                                   (a private_key_jwt client has none: it signs assertions with its key)
  update --config FILE ID [the flags of add but --id]
                                   change a client: the flags given replace its values
                                   (--resource "" clears the resources, --no-limit the rate limit)
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
		rate       = fs.Float64("rate", 0, "rate limit, requests per second (default limits.per_client; 0 = unlimited); update: alone, keeps the client's burst")
		burst      = fs.Int("burst", 0, "rate limit burst (with --rate); update: alone, keeps the client's rate")
		introspect = fs.Bool("introspect", false, "the client may call the introspection endpoint")
		method     = fs.String("auth-method", "", "token_endpoint_auth_method: client_secret_basic (default; client_secret_post alike) or private_key_jwt")
		jwksFile   = fs.String("jwks-file", "", "private_key_jwt: a file holding the client's JWK Set (public keys, JSON)")
		jwksURI    = fs.String("jwks-uri", "", "private_key_jwt: or the https URL of its JWK Set")
		noLimit    = fs.Bool("no-limit", false, "update: go back to limits.per_client")
		resources  []string
	)
	fs.Func("resource", "an RFC 8707 resource indicator the client may ask for (absolute URI); repeat for more", func(v string) error {
		resources = append(resources, strings.Fields(v)...)
		return nil
	})
	var wantArgs int
	switch cmd {
	case "add", "list":
	case "remove", "rotate-secret", "update":
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
	if cmd != "add" && cmd != "update" {
		for _, name := range []string{"id", "scopes", "token-ttl", "rate", "burst", "introspect", "auth-method", "jwks-file", "jwks-uri", "resource", "no-limit"} {
			if set[name] {
				return fmt.Errorf("client %s: --%s is a flag of client add and update", cmd, name)
			}
		}
	}
	switch {
	case cmd == "update" && set["id"]:
		return errors.New("client update: the id is the argument (tokengw client update --config FILE ID); it cannot be changed")
	case cmd == "add" && set["no-limit"]:
		return errors.New("client add: --no-limit is a flag of client update (a new client without --rate has the default limit)")
	case set["no-limit"] && (set["rate"] || set["burst"]):
		return errors.New("client update: --no-limit and --rate/--burst exclude each other")
	}
	var jwks string
	if set["jwks-file"] {
		if jwks, err = readJWKS(*jwksFile); err != nil {
			return fmt.Errorf("client %s: --jwks-file: %w", cmd, err)
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
		spec := clients.Spec{ID: *id, Introspect: *introspect, AuthMethod: *method, JWKS: jwks, JWKSURI: *jwksURI, Resources: resources}
		if set["id"] && *id == "" {
			return errors.New("client add: --id must not be empty (omit it to have one generated)")
		}
		spec.Scopes = strings.Fields(*scopes)
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
		printSecret(stdout, stderr, info, secret)
	case "update":
		var p clients.Patch
		if set["scopes"] {
			sc := strings.Fields(*scopes)
			p.Scopes = &sc
		}
		if set["token-ttl"] {
			d, err := clients.ParseTokenTTL(*ttl)
			if err != nil {
				return clientErr("update", pos[0], err)
			}
			p.TokenTTL = &d
		}
		switch {
		case set["no-limit"] && *noLimit, set["rate"] && set["burst"]:
			var l *store.Limit
			if !*noLimit {
				l = &store.Limit{Rate: *rate, Burst: *burst}
			}
			p.Limit = &l
		case set["rate"]: // the burst of the client's own limit is kept
			p.LimitRate = rate
		case set["burst"]: // and here its rate
			p.LimitBurst = burst
		}
		if set["introspect"] {
			p.Introspect = introspect
		}
		if set["auth-method"] {
			p.AuthMethod = method
		}
		if set["jwks-file"] {
			p.JWKS = &jwks
		}
		if set["jwks-uri"] {
			p.JWKSURI = jwksURI
		}
		if set["resource"] {
			p.Resources = &resources
		}
		info, secret, err := m.Update(ctx, pos[0], p)
		if err != nil {
			return clientErr("update", pos[0], err)
		}
		if secret != "" {
			printSecret(stdout, stderr, info, secret)
		} else {
			fmt.Fprintf(stdout, "updated client %q\n", info.ID)
		}
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
		printSecret(stdout, stderr, info, secret)
	}
	return nil
}

// readJWKS reads a JWK Set file (at most assertion.MaxJWKSBytes) and
// returns it compacted; clients.Spec checks the keys.
func readJWKS(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, assertion.MaxJWKSBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > assertion.MaxJWKSBytes {
		return "", fmt.Errorf("%s is larger than %d bytes", path, assertion.MaxJWKSBytes)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil || !bytes.HasPrefix(buf.Bytes(), []byte("{")) {
		return "", fmt.Errorf(`%s is not a JWK Set (a JSON object {"keys": [...]})`, path)
	}
	return buf.String(), nil
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
		AllowHTTPJWKSURI: cfg.Assertions.AllowHTTPJWKSURI,
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
	case errors.Is(err, clients.ErrNoSecret):
		return fmt.Errorf("client %s: client %q authenticates with private_key_jwt and has no secret to rotate; change its keys with tokengw client update --jwks-file FILE (or --jwks-uri URL) %s", cmd, id, id)
	case errors.Is(err, clients.ErrReadOnly):
		return fmt.Errorf("client %s: client %q is defined in the config file (clients:) and is read-only here; change it in the file", cmd, id)
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("client %s: client %q exists already", cmd, id)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("client %s: no client %q in the store", cmd, id)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("client %s: client %q was changed by someone else at the same time, again and again; nothing was written; retry", cmd, id)
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
	case field == "token_endpoint_auth_method":
		field = "--auth-method"
	case field == "jwks":
		field = "--jwks-file"
	case field == "jwks_uri":
		field = "--jwks-uri"
	case strings.HasPrefix(field, "resources"):
		field = "--resource"
	}
	return field + ": " + se.Msg
}

// printSecret prints a new client's id and its generated secret, or, for a
// private_key_jwt client, which has none, its method.
func printSecret(stdout, stderr io.Writer, info clients.Info, secret string) {
	if secret == "" {
		fmt.Fprintf(stdout, "client_id: %s\ntoken_endpoint_auth_method: %s\n", info.ID, info.Method())
		fmt.Fprintln(stderr, "tokengw: the client has no secret; it authenticates with assertions signed by its registered key.")
		return
	}
	fmt.Fprintf(stdout, "client_id: %s\nclient_secret: %s\n", info.ID, secret)
	fmt.Fprintln(stderr, "tokengw: the secret is shown only now; the store keeps only its hash.")
}

// printClients writes the client table: one row per client, no secrets.
func printClients(w io.Writer, list []clients.Info) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE\tSCOPES\tTOKEN_TTL\tLIMIT\tINTROSPECT\tCREATED\tAUTH\tRESOURCES")
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
		res := "-"
		if len(c.Resources) > 0 {
			res = strings.Join(c.Resources, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Source(), strings.Join(c.Scopes, " "), ttl, limit, intro, created, c.Method(), res)
	}
	_ = tw.Flush()
}
