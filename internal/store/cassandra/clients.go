package cassandra

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/store"
)

// Statements on clients. Every write is a lightweight transaction: creates
// must not overwrite; an update applies only to the version it was made
// from (IF updated_at = the UpdatedAt read), so it neither resurrects a
// deleted client nor overwrites a change another replica made in between.
const (
	clientCols = `client_id, secret_hash, scopes, token_ttl, limit_rate, limit_burst, introspect, created_at, updated_at,
auth_method, jwks, jwks_uri, resources`
	qSelectClient = `SELECT ` + clientCols + ` FROM clients WHERE client_id = ?`
	qListClients  = `SELECT ` + clientCols + ` FROM clients`
	qCreateClient = `INSERT INTO clients (` + clientCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`
	qUpdateClient = `UPDATE clients SET secret_hash = ?, scopes = ?, token_ttl = ?, limit_rate = ?, limit_burst = ?,
introspect = ?, created_at = ?, updated_at = ?, auth_method = ?, jwks = ?, jwks_uri = ?, resources = ?
WHERE client_id = ? IF updated_at = ?`
	qDeleteClient = `DELETE FROM clients WHERE client_id = ? IF EXISTS`
)

type clientRow struct {
	c          store.Client
	ttlMS      int64
	limitRate  *float64
	limitBurst *int
}

func (r *clientRow) dest() []any {
	return []any{&r.c.ID, &r.c.SecretHash, &r.c.Scopes, &r.ttlMS, &r.limitRate, &r.limitBurst,
		&r.c.Introspect, &r.c.CreatedAt, &r.c.UpdatedAt, &r.c.AuthMethod, &r.c.JWKS, &r.c.JWKSURI, &r.c.Resources}
}

func (r *clientRow) client() store.Client {
	c := r.c
	c.TokenTTL = time.Duration(r.ttlMS) * time.Millisecond
	if len(c.Resources) == 0 {
		c.Resources = nil // null (a row from before the column) or empty
	}
	if r.limitRate != nil || r.limitBurst != nil {
		c.Limit = &store.Limit{}
		if r.limitRate != nil {
			c.Limit.Rate = *r.limitRate
		}
		if r.limitBurst != nil {
			c.Limit.Burst = *r.limitBurst
		}
	}
	return c
}

// limitValues binds a limit: nil becomes absent columns (unset on insert,
// so no tombstone is written; null on update, which clears an override).
func limitValues(l *store.Limit, unset bool) (rate, burst any) {
	if l != nil {
		return l.Rate, l.Burst
	}
	if unset {
		return gocql.UnsetValue, gocql.UnsetValue
	}
	return nil, nil
}

// scopesValue keeps an empty scope (or resource) list a (frozen, empty)
// set, not null: no tombstone is written.
func scopesValue(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Client implements store.Clients. Its read degrades to one replica while
// a quorum is short (degraded.go).
func (s *Store) Client(ctx context.Context, id string) (store.Client, error) {
	if s.errClosed() {
		return store.Client{}, store.ErrClosed
	}
	var r clientRow
	err := s.scanDegradable(ctx, qSelectClient, []any{id}, r.dest()...)
	if errors.Is(err, gocql.ErrNotFound) {
		return store.Client{}, store.ErrNotFound
	}
	if err != nil {
		return store.Client{}, classify("client", err)
	}
	return r.client(), nil
}

// Clients implements store.Clients: a full scan, paged, sorted by id here
// (Cassandra orders partitions by token, not by key). A registry of a few
// thousand clients is a few pages.
func (s *Store) Clients(ctx context.Context) ([]store.Client, error) {
	if s.errClosed() {
		return nil, store.ErrClosed
	}
	iter := s.idem(s.session.Query(qListClients)).Consistency(s.readCons).PageSize(pageSize).IterContext(ctx)
	var out []store.Client
	for {
		var r clientRow
		if !iter.Scan(r.dest()...) {
			break
		}
		out = append(out, r.client())
	}
	if err := iter.Close(); err != nil {
		return nil, classify("clients", err)
	}
	slices.SortFunc(out, func(a, b store.Client) int { return strings.Compare(a.ID, b.ID) })
	if out == nil {
		out = []store.Client{}
	}
	return out, nil
}

// CreateClient implements store.Clients (INSERT ... IF NOT EXISTS).
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	if s.errClosed() {
		return store.ErrClosed
	}
	rate, burst := limitValues(c.Limit, true)
	applied, err := s.cas(ctx, "create client", func(actx context.Context) (bool, error) {
		return s.session.Query(qCreateClient, c.ID, c.SecretHash, scopesValue(c.Scopes),
			c.TokenTTL.Milliseconds(), rate, burst, c.Introspect, c.CreatedAt, c.UpdatedAt,
			c.AuthMethod, c.JWKS, c.JWKSURI, scopesValue(c.Resources)).
			MapScanCASContext(actx, map[string]any{})
	}, func(ctx context.Context) (casOutcome, error) {
		have, found, err := s.serialClient(ctx, c.ID)
		if err != nil || !found {
			return casOutcome{}, err
		}
		return casOutcome{applied: sameVersion(have, c), decided: true}, nil
	})
	if err != nil {
		return err
	}
	if !applied {
		return store.ErrExists
	}
	return nil
}

// UpdateClient implements store.Clients (UPDATE ... IF updated_at = ?). A
// condition on a row that does not exist is not applied either, so a
// statement that was not applied is told apart by a serial read: absent
// is ErrNotFound, changed is ErrConflict.
func (s *Store) UpdateClient(ctx context.Context, c store.Client, ifUpdatedAt time.Time) error {
	if s.errClosed() {
		return store.ErrClosed
	}
	rate, burst := limitValues(c.Limit, false)
	// Never bind null: "IF updated_at = null" applies to an absent row,
	// creating it. A zero time binds as an empty value, as it was written.
	prev := ifUpdatedAt.UTC().Truncate(time.Millisecond)
	applied, err := s.cas(ctx, "update client", func(actx context.Context) (bool, error) {
		return s.session.Query(qUpdateClient, c.SecretHash, scopesValue(c.Scopes),
			c.TokenTTL.Milliseconds(), rate, burst, c.Introspect, c.CreatedAt, c.UpdatedAt,
			c.AuthMethod, c.JWKS, c.JWKSURI, scopesValue(c.Resources), c.ID, prev).
			MapScanCASContext(actx, map[string]any{})
	}, func(ctx context.Context) (casOutcome, error) {
		have, found, err := s.serialClient(ctx, c.ID)
		switch {
		case err != nil:
			return casOutcome{}, err
		case !found:
			return casOutcome{decided: true}, nil // deleted: not found
		case sameVersion(have, c):
			return casOutcome{applied: true, decided: true}, nil
		case have.UpdatedAt.Equal(prev):
			return casOutcome{}, nil // not applied yet: send it again
		}
		return casOutcome{decided: true}, nil // another write came first
	})
	if err != nil {
		return err
	}
	if applied {
		return nil
	}
	_, found, err := s.serialClient(ctx, c.ID)
	switch {
	case err != nil:
		return classify("update client: read after a refused update", err)
	case !found:
		return store.ErrNotFound
	}
	return store.ErrConflict
}

// DeleteClient implements store.Clients (DELETE ... IF EXISTS, then the
// client's reuse rows).
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	if s.errClosed() {
		return store.ErrClosed
	}
	applied, err := s.cas(ctx, "delete client", func(actx context.Context) (bool, error) {
		return s.session.Query(qDeleteClient, id).MapScanCASContext(actx, map[string]any{})
	}, func(ctx context.Context) (casOutcome, error) {
		_, found, err := s.serialClient(ctx, id)
		return casOutcome{applied: !found, decided: !found}, err
	})
	if err != nil {
		return err
	}
	if !applied {
		return store.ErrNotFound
	}
	return s.ClearCurrents(ctx, id)
}

// serialClient reads a client at the serial consistency (lwt.go).
func (s *Store) serialClient(ctx context.Context, id string) (store.Client, bool, error) {
	var r clientRow
	found, err := s.serialRead(ctx, qSelectClient, []any{id}, r.dest()...)
	if err != nil || !found {
		return store.Client{}, false, err
	}
	return r.client(), true, nil
}

// sameVersion reports whether the stored client is the version c wrote:
// every field, the update time at the millisecond precision Cassandra
// keeps (two writers on two replicas may pick the same update time).
func sameVersion(have, c store.Client) bool {
	return have.SecretHash == c.SecretHash && have.JWKS == c.JWKS && have.JWKSURI == c.JWKSURI &&
		have.AuthMethod == c.AuthMethod && sameSet(have.Scopes, c.Scopes) &&
		sameSet(have.Resources, c.Resources) && have.TokenTTL == c.TokenTTL.Truncate(time.Millisecond) &&
		have.Introspect == c.Introspect && sameLimit(have.Limit, c.Limit) &&
		have.UpdatedAt.Equal(c.UpdatedAt.Truncate(time.Millisecond))
}

// sameSet compares two lists as the sets Cassandra keeps of them.
func sameSet(a, b []string) bool {
	norm := func(s []string) []string {
		s = slices.Clone(s)
		slices.Sort(s)
		return slices.Compact(s)
	}
	return slices.Equal(norm(a), norm(b))
}

// sameLimit compares two limit overrides (nil: none).
func sameLimit(a, b *store.Limit) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
