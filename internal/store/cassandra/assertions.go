package cassandra

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Assertions = (*Store)(nil)

// assertionsTable is the CQL of the one-time assertion identifiers
// (Migrate runs it). One partition per (scope, jti hash): the claim is a
// lightweight transaction on a single row, written USING TTL = the time the
// assertion could still be accepted, so records leave by themselves, in
// whole SSTables (TimeWindowCompactionStrategy, as the token tables).
// claim_id is random per attempt: a claim whose outcome is unknown (a
// timeout) is taken back only if it is still this attempt's.
func assertionsTable(ks string) string {
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.assertion_jtis (
  scope      text,
  jti_hash   blob,
  claim_id   blob,
  expires_at timestamp,
  PRIMARY KEY ((scope, jti_hash))
) WITH %s
  AND comment = 'tokengw: used one-time assertion identifiers (jti); INSERT IF NOT EXISTS USING TTL = until the assertion expires plus the clock skew'`,
		ks, ttlTableOptions)
}

const (
	qClaimJTI   = `INSERT INTO assertion_jtis (scope, jti_hash, claim_id, expires_at) VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ?`
	qReleaseJTI = `DELETE FROM assertion_jtis WHERE scope = ? AND jti_hash = ? IF claim_id = ?`
)

// ClaimAssertion implements store.Assertions with INSERT ... IF NOT EXISTS
// USING TTL (Paxos: one winner among every replica). When the outcome is
// unknown (a timeout after the request left), the row is deleted again in
// the background if it holds this attempt's claim_id, so that the caller's
// retry, after the 503 it gets, is not refused as a replay of itself.
func (s *Store) ClaimAssertion(ctx context.Context, scope string, jtiHash []byte, until time.Time) error {
	if s.errClosed() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cassandra: claim assertion: %w", err)
	}
	if strings.IndexByte(scope, 0) >= 0 || len(jtiHash) == 0 {
		return errors.New("cassandra: claim assertion: scope with NUL or empty jti hash")
	}
	replay := false
	err := s.withQuorum("claim assertion", true, func() error {
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		applied, err := s.session.Query(qClaimJTI, scope, jtiHash, id, until, ttlSeconds(until, s.now())).
			MapScanCASContext(ctx, map[string]any{})
		if err != nil {
			if maybeApplied(err) {
				s.releaseJTI(ctx, scope, bytes.Clone(jtiHash), id)
			}
			return classify("claim assertion", err)
		}
		replay = !applied
		return nil
	})
	if err == nil && replay {
		return store.ErrReplay
	}
	return err
}

// releaseJTI deletes a claim if it is still attempt id's: best effort, in
// the background, on its own deadline (as release does for reuse slots).
func (s *Store) releaseJTI(ctx context.Context, scope string, jtiHash, id []byte) {
	s.background(ctx, func(ctx context.Context) {
		_, _ = s.session.Query(qReleaseJTI, scope, jtiHash, id).MapScanCASContext(ctx, map[string]any{})
	})
}
