package cassandra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Upstream = (*Store)(nil)

// upstreamTable is upstream mode's table (Statements creates it). One table
// holds three kinds of rows, told apart by how their keys were made (the
// caller's keyed hashes never collide across kinds):
//
//   - entries: a provider's success, sealed (sealed), and a replay counter
//     (replays, moved only by a lightweight transaction);
//   - index rows: a token handed out → the key of its entry (ref), for
//     revocation;
//   - leases: holder, claimed with INSERT IF NOT EXISTS USING TTL, so one
//     replica at a time calls the provider for a key.
//
// Every row is written with a TTL (its expires_at); the table is
// compacted like the other TTL'd tables.
func upstreamTable(ks string) string {
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.upstream_cache (
  key        blob PRIMARY KEY,
  holder     text,
  ref        blob,
  sealed     blob,
  replays    int,
  stored_at  timestamp,
  expires_at timestamp
) WITH %s
  AND comment = 'tokengw upstream mode: sealed provider responses, token-to-entry pointers and leases; keys are keyed hashes; written USING TTL'`,
		ks, ttlTableOptions)
}

const (
	qUpLease   = `INSERT INTO upstream_cache (key, holder, expires_at) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?`
	qUpRelease = `DELETE FROM upstream_cache WHERE key = ? IF holder = ?`
	qUpPut     = `INSERT INTO upstream_cache (key, ref, sealed, replays, stored_at, expires_at) VALUES (?, ?, ?, 0, ?, ?) USING TTL ?`
	qUpGet     = `SELECT ref, sealed, replays, stored_at, expires_at FROM upstream_cache WHERE key = ?`
	qUpReplay  = `UPDATE upstream_cache USING TTL ? SET replays = ? WHERE key = ? IF replays = ?`
	qUpDelete  = `DELETE FROM upstream_cache WHERE key = ?`
	// maxReplayAttempts bounds the compare-and-set loop of one replay.
	maxReplayAttempts = 8
)

// UpstreamLease implements store.Upstream with a lightweight transaction.
func (s *Store) UpstreamLease(ctx context.Context, key []byte, holder string, ttl time.Duration) (bool, error) {
	if s.errClosed() {
		return false, store.ErrClosed
	}
	applied := false
	err := s.withQuorum("upstream: lease", true, func() error {
		until := s.now().Add(ttl)
		var err error
		applied, err = s.session.Query(qUpLease, key, holder, until, ttlSeconds(until, s.now())).
			MapScanCASContext(ctx, map[string]any{})
		if err != nil {
			if maybeApplied(err) {
				_ = s.UpstreamRelease(context.WithoutCancel(ctx), key, holder)
			}
			return classify("upstream: lease", err)
		}
		return nil
	})
	return applied, err
}

// UpstreamRelease implements store.Upstream.
func (s *Store) UpstreamRelease(ctx context.Context, key []byte, holder string) error {
	if s.errClosed() {
		return store.ErrClosed
	}
	_, err := s.session.Query(qUpRelease, key, holder).MapScanCASContext(ctx, map[string]any{})
	return classify("upstream: release", err)
}

// PutUpstream implements store.Upstream.
// The entries are written one by one, in order (the entry before its
// index rows); a logged batch would make them all-or-nothing at the cost
// of the batch log, which index rows (they only speed up revocation) are
// not worth.
func (s *Store) PutUpstream(ctx context.Context, entries ...store.UpstreamEntry) error {
	if s.errClosed() {
		return store.ErrClosed
	}
	return s.withQuorum("upstream: put", false, func() error {
		for _, e := range entries {
			now := s.now()
			if !now.Before(e.ExpiresAt) {
				continue // dead on arrival: nothing to keep
			}
			err := s.session.Query(qUpPut, e.Key, e.Ref, e.Sealed, e.StoredAt, e.ExpiresAt, ttlSeconds(e.ExpiresAt, now)).
				Idempotent(true).ExecContext(ctx)
			if err != nil {
				return classify("upstream: put", err)
			}
		}
		return nil
	})
}

func (s *Store) upstreamRow(ctx context.Context, key []byte, cons gocql.Consistency) (store.UpstreamEntry, error) {
	e := store.UpstreamEntry{Key: bytes.Clone(key)}
	var replays *int
	err := s.session.Query(qUpGet, key).Consistency(cons).Idempotent(true).
		ScanContext(ctx, &e.Ref, &e.Sealed, &replays, &e.StoredAt, &e.ExpiresAt)
	if errors.Is(err, gocql.ErrNotFound) {
		return store.UpstreamEntry{}, store.ErrNotFound
	}
	if err != nil {
		return store.UpstreamEntry{}, classify("upstream: get", err)
	}
	if replays != nil {
		e.Replays = *replays
	}
	// Lease rows hold neither; TTLs are whole seconds, the clock decides.
	if (e.Sealed == nil && e.Ref == nil) || !s.now().Before(e.ExpiresAt) {
		return store.UpstreamEntry{}, store.ErrNotFound
	}
	return e, nil
}

// UpstreamEntry implements store.Upstream.
func (s *Store) UpstreamEntry(ctx context.Context, key []byte) (store.UpstreamEntry, error) {
	if s.errClosed() {
		return store.UpstreamEntry{}, store.ErrClosed
	}
	return s.upstreamRow(ctx, key, s.readCons)
}

// TakeUpstreamReplay implements store.Upstream: a compare-and-set on the
// replay counter, so replicas together never take more than max.
func (s *Store) TakeUpstreamReplay(ctx context.Context, key []byte, max int) (store.UpstreamEntry, bool, error) {
	if s.errClosed() {
		return store.UpstreamEntry{}, false, store.ErrClosed
	}
	e, err := s.upstreamRow(ctx, key, s.slotReadCons)
	if err != nil {
		return store.UpstreamEntry{}, false, err
	}
	for range maxReplayAttempts {
		if e.Replays >= max {
			return e, false, nil
		}
		prev := map[string]any{}
		applied, err := s.session.Query(qUpReplay, ttlSeconds(e.ExpiresAt, s.now()), e.Replays+1, key, e.Replays).
			MapScanCASContext(ctx, prev)
		if err != nil {
			return store.UpstreamEntry{}, false, classify("upstream: replay", err)
		}
		if applied {
			e.Replays++
			return e, true, nil
		}
		n, ok := prev["replays"].(int)
		if !ok {
			return store.UpstreamEntry{}, false, store.ErrNotFound // deleted meanwhile
		}
		e.Replays = n
	}
	return store.UpstreamEntry{}, false, fmt.Errorf("cassandra: upstream: replay: %w: counter changed %d times under contention", store.ErrUnavailable, maxReplayAttempts)
}

// DeleteUpstream implements store.Upstream.
func (s *Store) DeleteUpstream(ctx context.Context, keys ...[]byte) error {
	if s.errClosed() {
		return store.ErrClosed
	}
	for _, k := range keys {
		if err := s.session.Query(qUpDelete, k).Idempotent(true).ExecContext(ctx); err != nil {
			return classify("upstream: delete", err)
		}
	}
	return nil
}
