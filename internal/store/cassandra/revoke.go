package cassandra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"golang.org/x/sync/errgroup"

	"github.com/tokengw/tokengw/internal/store"
)

// Revocation: one token, one client's reuse slots, and every live token of
// a client.

// Revoke implements store.Tokens: the token row is updated with its
// remaining TTL (no delete, no tombstone), then the reuse row is deleted if
// it points at this token. That delete is a lightweight transaction
// (IF token_hash = ?), like every other row-level write on current_tokens,
// so it cannot remove a newer claim; a quorum read first skips the Paxos
// round when the row points elsewhere, as it does for most revocations.
func (s *Store) Revoke(ctx context.Context, hash []byte) error {
	// The reuse row is read at a quorum at least: the gate as for a
	// lightweight transaction.
	return s.withQuorum("revoke", true, func() error { return s.revoke(ctx, hash) })
}

// revoke is Revoke past the quorum gate.
func (s *Store) revoke(ctx context.Context, hash []byte) error {
	t, err := s.Token(ctx, hash)
	if err != nil {
		return err
	}
	ttl := ttlSeconds(t.ExpiresAt, s.now())
	err = s.idem(s.session.Query(qRevokeToken, ttl, hash)).ExecContext(ctx)
	if err != nil {
		return classify("revoke", err)
	}
	var holder []byte
	err = s.idem(s.session.Query(qSelectSlotHash, t.ClientID, t.ReuseKey)).
		Consistency(s.slotReadCons).ScanContext(ctx, &holder)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil
	}
	if err != nil {
		return classify("revoke: read reuse row", err)
	}
	if !bytes.Equal(holder, hash) {
		return nil
	}
	_, err = s.cas(ctx, "revoke: delete reuse row", func(actx context.Context) (bool, error) {
		return s.session.Query(qReleaseCurrent, t.ClientID, t.ReuseKey, hash).
			MapScanCASContext(actx, map[string]any{})
	}, func(ctx context.Context) (casOutcome, error) {
		var h []byte
		found, err := s.serialRead(ctx, qSelectSlotHash, []any{t.ClientID, t.ReuseKey}, &h)
		if err != nil {
			return casOutcome{}, err
		}
		gone := !found || !bytes.Equal(h, hash)
		return casOutcome{applied: gone, decided: gone}, nil
	})
	return err
}

// ClearCurrents implements store.Tokens with one partition delete (the
// reuse rows are partitioned by client). It is the one write on
// current_tokens that is not a lightweight transaction; it takes the
// coordinator's timestamp rather than the client's, so that it is ordered
// against Paxos-written claims by the cluster's clocks alone (docs/cassandra.md).
func (s *Store) ClearCurrents(ctx context.Context, clientID string) error {
	if s.errClosed() {
		return store.ErrClosed
	}
	return s.withQuorum("clear currents", false, func() error {
		err := s.idem(s.session.Query(qClearCurrents, clientID)).
			DefaultTimestamp(false).ExecContext(ctx)
		return classify("clear currents", err)
	})
}

// revokeParallel bounds the tokens RevokeClient revokes concurrently (each
// is a read and, when live, an update).
const revokeParallel = 32

// RevokeClient implements store.Tokens:
//
//  1. ClearCurrents, so that the client's reuse rows stop handing out the
//     tokens about to be revoked;
//  2. the client's live index rows, SELECT ... FROM tokens_by_client WHERE
//     client_id = ? AND expires_at > now, paged; for each, the token row is
//     read (an index row whose token is missing, expired or already revoked
//     is skipped) and updated as Revoke does: USING TTL <remaining> SET
//     revoked = true, up to revokeParallel at a time;
//  3. ClearCurrents again: a slot claimed during step 2 may hold a token
//     that step 2 revoked.
//
// The updates are idempotent and so is the whole; a failed call can be
// repeated. Two concurrent calls may both count one token.
func (s *Store) RevokeClient(ctx context.Context, clientID string) (int, error) {
	if s.errClosed() {
		return 0, store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("cassandra: revoke client: %w", err)
	}
	if err := s.ClearCurrents(ctx, clientID); err != nil {
		return 0, err
	}
	var revoked atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(revokeParallel)
	iter := s.idem(s.session.Query(qLiveByClient, clientID, s.now())).
		Consistency(s.readCons).PageSize(pageSize).IterContext(gctx)
	var (
		exp  time.Time
		hash []byte
	)
	for iter.Scan(&exp, &hash) {
		h := bytes.Clone(hash)
		g.Go(func() error {
			ok, err := s.revokeOne(gctx, clientID, h)
			if ok {
				revoked.Add(1)
			}
			return err
		})
	}
	ierr := iter.Close()
	err := g.Wait()
	n := int(revoked.Load())
	switch {
	case err != nil:
		return n, err
	case ierr != nil:
		return n, classify("revoke client: read index", ierr)
	}
	return n, s.ClearCurrents(ctx, clientID)
}

// revokeOne revokes one token of clientID found in tokens_by_client,
// reporting whether it was live and not yet revoked.
func (s *Store) revokeOne(ctx context.Context, clientID string, hash []byte) (bool, error) {
	var t store.Token
	err := s.idem(s.session.Query(qSelectToken, hash)).
		Consistency(s.readCons).
		ScanContext(ctx, &t.ClientID, &t.Scope, &t.ReuseKey, &t.IssuedAt, &t.ExpiresAt, &t.Revoked)
	if errors.Is(err, gocql.ErrNotFound) {
		return false, nil // the token row was never written, or has expired
	}
	if err != nil {
		return false, classify("revoke client: read token", err)
	}
	now := s.now()
	if t.ClientID != clientID || t.Revoked || !now.Before(t.ExpiresAt) {
		return false, nil
	}
	err = s.idem(s.session.Query(qRevokeToken, ttlSeconds(t.ExpiresAt, now), hash)).ExecContext(ctx)
	if err != nil {
		return false, classify("revoke client: revoke token", err)
	}
	return true, nil
}
