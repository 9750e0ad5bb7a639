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
// must not overwrite, updates must not resurrect a deleted client.
const (
	clientCols    = `client_id, secret_hash, scopes, token_ttl, limit_rate, limit_burst, introspect, created_at, updated_at`
	qSelectClient = `SELECT ` + clientCols + ` FROM clients WHERE client_id = ?`
	qListClients  = `SELECT ` + clientCols + ` FROM clients`
	qCreateClient = `INSERT INTO clients (` + clientCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`
	qUpdateClient = `UPDATE clients SET secret_hash = ?, scopes = ?, token_ttl = ?, limit_rate = ?, limit_burst = ?,
introspect = ?, created_at = ?, updated_at = ? WHERE client_id = ? IF EXISTS`
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
		&r.c.Introspect, &r.c.CreatedAt, &r.c.UpdatedAt}
}

func (r *clientRow) client() store.Client {
	c := r.c
	c.TokenTTL = time.Duration(r.ttlMS) * time.Millisecond
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

// scopesValue keeps an empty scope list a (frozen, empty) set, not null.
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
			c.TokenTTL.Milliseconds(), rate, burst, c.Introspect, c.CreatedAt, c.UpdatedAt).
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

// UpdateClient implements store.Clients (UPDATE ... IF EXISTS).
func (s *Store) UpdateClient(ctx context.Context, c store.Client) error {
	if s.errClosed() {
		return store.ErrClosed
	}
	rate, burst := limitValues(c.Limit, false)
	applied, err := s.cas(ctx, "update client", func(actx context.Context) (bool, error) {
		return s.session.Query(qUpdateClient, c.SecretHash, scopesValue(c.Scopes),
			c.TokenTTL.Milliseconds(), rate, burst, c.Introspect, c.CreatedAt, c.UpdatedAt, c.ID).
			MapScanCASContext(actx, map[string]any{})
	}, func(ctx context.Context) (casOutcome, error) {
		have, found, err := s.serialClient(ctx, c.ID)
		switch {
		case err != nil:
			return casOutcome{}, err
		case !found:
			return casOutcome{decided: true}, nil // deleted: not found
		}
		ok := sameVersion(have, c)
		return casOutcome{applied: ok, decided: ok}, nil
	})
	if err != nil {
		return err
	}
	if !applied {
		return store.ErrNotFound
	}
	return nil
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
// its secret hash (salted, so unique per write) and update time, at the
// millisecond precision Cassandra keeps.
func sameVersion(have, c store.Client) bool {
	return have.SecretHash == c.SecretHash && have.UpdatedAt.Equal(c.UpdatedAt.Truncate(time.Millisecond))
}
