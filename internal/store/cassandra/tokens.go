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

// Statements on tokens and current_tokens. They are constants so that gocql
// prepares each once per connection and reuses it.
const (
	qInsertToken = `INSERT INTO tokens (token_hash, client_id, scope, reuse_key, issued_at, expires_at, revoked)
VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?`
	qSelectToken = `SELECT client_id, scope, reuse_key, issued_at, expires_at, revoked FROM tokens WHERE token_hash = ?`
	qRevokeToken = `UPDATE tokens USING TTL ? SET revoked = true WHERE token_hash = ?`
	qTokenExpiry = `SELECT expires_at FROM tokens`

	// tokens_by_client: every token of a client, clustered by expiry, so
	// that the client's live tokens are one slice of one partition.
	qInsertByClient = `INSERT INTO tokens_by_client (client_id, expires_at, token_hash) VALUES (?, ?, ?) USING TTL ?`
	qLiveByClient   = `SELECT expires_at, token_hash FROM tokens_by_client WHERE client_id = ? AND expires_at > ?`

	// qClaim is the exclusive claim of a reuse slot: a lightweight
	// transaction, so among any number of concurrent callers on any number
	// of replicas exactly one applies it.
	qClaim = `INSERT INTO current_tokens (client_id, reuse_key, token_hash, sealed, scope, issued_at, expires_at, reuse_until)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?`
	// qTakeover replaces a row whose reuse window has passed but whose TTL
	// (whole seconds) has not, if it still holds the stale token.
	qTakeover = `UPDATE current_tokens USING TTL ?
SET token_hash = ?, sealed = ?, scope = ?, issued_at = ?, expires_at = ?, reuse_until = ?
WHERE client_id = ? AND reuse_key = ? IF token_hash = ?`
	qSelectCurrent   = `SELECT token_hash, sealed, scope, issued_at, expires_at, reuse_until FROM current_tokens WHERE client_id = ? AND reuse_key = ?`
	qSelectSlotHash  = `SELECT token_hash FROM current_tokens WHERE client_id = ? AND reuse_key = ?`
	qReleaseCurrent  = `DELETE FROM current_tokens WHERE client_id = ? AND reuse_key = ? IF token_hash = ?`
	qClearCurrents   = `DELETE FROM current_tokens WHERE client_id = ?`
	maxClaimAttempts = 3
	// confirmReads is how often confirm reads a fresh slot's token row
	// (5, 10, 20 ms apart) before it calls the token missing.
	confirmReads = 4
	// loserWait is how long the loser of a claim keeps reading a young
	// slot's missing token row (backing off to 100 ms apart, and ending
	// confirmMargin before its deadline): on a loaded cluster with a node
	// down the winner's two writes can take a second (issue 18's cluster
	// test saw the loser give up after 35 ms and answer 503).
	loserWait     = 1500 * time.Millisecond
	confirmMargin = 100 * time.Millisecond
)

func (s *Store) errClosed() bool { return s.closed.Load() }

// Issue implements store.Tokens.
//
// With cur, the claim comes first (INSERT ... IF NOT EXISTS on
// current_tokens); a caller that loses persists nothing and gets the
// winner's row. The winner then writes the token's tokens_by_client row
// and, once that is stored, its token row (insertToken). A slot whose
// token row was never sent is given back (DELETE ... IF token_hash = its
// own) when the claim's outcome was unknown or the index row failed; once
// the token row has been sent the slot is never given back, whatever the
// answer: the row may have landed, and another replica may already hand
// it out (issue 18's cluster test saw a release land after that, and a
// second token minted for the slot). Until the token row is there a slot
// row names a token row not written (yet, or ever): the loser here, like
// Current, confirms the token row of a freshly claimed slot before
// handing it out.
func (s *Store) Issue(ctx context.Context, tok store.Token, cur *store.Current) (store.Current, bool, error) {
	if s.errClosed() {
		return store.Current{}, false, store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return store.Current{}, false, fmt.Errorf("cassandra: issue: %w", err)
	}
	var (
		have    store.Current
		claimed bool
	)
	err := s.withQuorum("issue", cur != nil, func() error {
		var err error
		have, claimed, err = s.issue(ctx, tok, cur)
		return err
	})
	return have, claimed, err
}

// issue is Issue past the quorum gate.
func (s *Store) issue(ctx context.Context, tok store.Token, cur *store.Current) (store.Current, bool, error) {
	if cur == nil {
		return store.Current{}, false, s.insertToken(ctx, tok, nil)
	}
	claimed, have, err := s.claimConfirmed(ctx, cur)
	if err != nil {
		if maybeApplied(err) {
			// A compare-and-set that timed out or was cut off may have
			// been applied: take the slot back if it holds this token
			// (whose token row was never sent).
			s.release(ctx, cur)
		}
		return store.Current{}, false, err
	}
	if !claimed {
		return have, false, nil
	}
	if err := s.insertToken(ctx, tok, cur); err != nil {
		return store.Current{}, false, err
	}
	return cloneCurrent(*cur), true, nil
}

// claimConfirmed claims cur's slot, or returns the holder once confirm
// says it may be handed out. A holder that may not (an old row whose token
// is not stored, or revoked) is taken over; losing that takeover to
// another replica means looking again, at most maxClaimAttempts times.
func (s *Store) claimConfirmed(ctx context.Context, cur *store.Current) (bool, store.Current, error) {
	for range maxClaimAttempts {
		have, claimed, err := s.claim(ctx, cur)
		if err != nil || claimed {
			return claimed, store.Current{}, err
		}
		ok, revoked, err := s.confirm(ctx, have, false, true)
		switch {
		case err != nil:
			return false, store.Current{}, err
		case ok:
			return false, have, nil
		case s.young(have) && !revoked:
			// The winner's token never reached the store (its release is
			// on its way): hand out nothing; the caller retries.
			return false, store.Current{}, fmt.Errorf("cassandra: issue: the slot's token is not stored: %w", store.ErrUnavailable)
		}
		// An old row whose token is not stored (a claim whose outcome was
		// unknown and that a later Paxos round completed) or is revoked
		// (its revocation's row delete is on its way or was lost): nobody
		// may hand it out; take the slot over.
		if claimed, err = s.takeover(ctx, cur, have.TokenHash); err != nil || claimed {
			return claimed, store.Current{}, err
		}
	}
	return false, store.Current{}, fmt.Errorf("cassandra: issue: claim: %w: slot changed %d times under contention", store.ErrUnavailable, maxClaimAttempts)
}

// insertToken writes the token's tokens_by_client row, then its token row,
// both with the token's remaining lifetime as TTL. The index row comes
// first so that every token row that exists has its index row, and
// RevokeClient, which finds a client's tokens through the index, cannot
// miss a token that can be handed out; an index row whose token row was
// never written points at nothing and RevokeClient skips it. Not a batch:
// a logged batch over two partitions costs a batchlog write and removal
// on two more replicas for every mint, and the atomicity it buys is not
// needed with this order.
//
// Both writes are idempotent, and a write whose outcome is unknown (a
// timeout: it may have landed) is sent again rather than reported
// (execSure). With claimed (the slot this token was claimed for), a
// failure of the index row gives the slot back, since the token row was
// never sent; a failure of the token row does not.
func (s *Store) insertToken(ctx context.Context, tok store.Token, claimed *store.Current) error {
	ttl := ttlSeconds(tok.ExpiresAt, s.now())
	// An unrevoked token leaves revoked unset: a false cell would compete,
	// by write timestamp (the writing replica's clock), with a revocation
	// from a replica whose clock is behind, and win.
	var revoked any = gocql.UnsetValue
	if tok.Revoked {
		revoked = true
	}
	err := s.execSure(ctx, "issue: insert token index", func() *gocql.Query {
		return s.idem(s.session.Query(qInsertByClient, tok.ClientID, tok.ExpiresAt, tok.Hash, ttl))
	})
	if err != nil {
		if claimed != nil {
			s.release(ctx, claimed)
		}
		return classify("issue: insert token index", err)
	}
	err = s.execSure(ctx, "issue: insert token", func() *gocql.Query {
		return s.idem(s.session.Query(qInsertToken, tok.Hash, tok.ClientID, tok.Scope, tok.ReuseKey,
			tok.IssuedAt, tok.ExpiresAt, revoked, ttl))
	})
	return classify("issue: insert token", err)
}

// resendBudget is how long execSure keeps resending a write whose outcome
// is unknown once the caller's context has ended (the store's timeout
// when it is shorter).
const resendBudget = 2 * time.Second

// execSure runs an idempotent write under ctx. If it fails with its outcome
// unknown (a write timeout, no answer in time, a connection lost with the
// write in flight: it may have landed), it is sent again, with the same
// values, until it succeeds, fails for certain, or resendBudget (at most
// the store's timeout) has passed beyond the caller's context — rather
// than reporting a failure for a write that may be stored. Resending is
// safe because the write is idempotent: the same row, the same cells.
func (s *Store) execSure(ctx context.Context, op string, q func() *gocql.Query) error {
	exec := func(ctx context.Context) error {
		if s.writeFault != nil {
			return s.writeFault(op, func() error { return q().ExecContext(ctx) })
		}
		return q().ExecContext(ctx)
	}
	err := exec(ctx)
	if err == nil || !casUnknown(err) {
		return err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(resendBudget, s.timeout))
	defer cancel()
	backoff := 10 * time.Millisecond
	for {
		timer := time.NewTimer(backoff)
		select {
		case <-rctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
		s.resends.Add(1)
		rerr := exec(rctx)
		switch {
		case rerr == nil:
			return nil
		case rctx.Err() != nil || !transient(rerr) && !casUnknown(rerr):
			return errors.Join(err, rerr)
		}
	}
}

// claim runs the lightweight transaction. It returns (the row, true) when
// this call claimed the slot, (the live holder, false) when another did.
// An unknown outcome is resolved by a serial read of the slot (lwt.go).
func (s *Store) claim(ctx context.Context, cur *store.Current) (store.Current, bool, error) {
	for range maxClaimAttempts {
		prev := map[string]any{}
		var (
			have     store.Current
			resolved bool
		)
		check := func(ctx context.Context) (casOutcome, error) {
			out, h, err := s.slotOutcome(ctx, cur)
			have, resolved = h, out.decided && !out.applied
			return out, err
		}
		applied, err := s.cas(ctx, "issue: claim", func(actx context.Context) (bool, error) {
			clear(prev)
			ttl := ttlSeconds(cur.ReuseUntil, s.now())
			return s.session.Query(qClaim, cur.ClientID, cur.ReuseKey, cur.TokenHash, cur.Sealed,
				cur.Scope, cur.IssuedAt, cur.ExpiresAt, cur.ReuseUntil, ttl).
				MapScanCASContext(actx, prev)
		}, check)
		if err != nil {
			return store.Current{}, false, err
		}
		if applied {
			return store.Current{}, true, nil
		}
		if !resolved {
			have = currentFromMap(cur.ClientID, cur.ReuseKey, prev)
		}
		if s.now().Before(have.ReuseUntil) {
			return have, false, nil
		}
		// The holder's reuse window has passed but its TTL (whole seconds,
		// one more than the window rounded up, counted from the whole
		// second the server wrote it in: ttlSeconds) has not.
		// Replace it only if it still holds that same stale token.
		applied, err = s.takeover(ctx, cur, have.TokenHash)
		if err != nil {
			return store.Current{}, false, err
		}
		if applied {
			return store.Current{}, true, nil
		}
		// Someone else replaced or deleted the row in between: look again.
	}
	return store.Current{}, false, fmt.Errorf("cassandra: issue: claim: %w: slot changed %d times under contention", store.ErrUnavailable, maxClaimAttempts)
}

// takeover replaces the slot's row with cur if it still holds stale.
func (s *Store) takeover(ctx context.Context, cur *store.Current, stale []byte) (bool, error) {
	return s.cas(ctx, "issue: claim", func(actx context.Context) (bool, error) {
		ttl := ttlSeconds(cur.ReuseUntil, s.now())
		return s.session.Query(qTakeover, ttl, cur.TokenHash, cur.Sealed, cur.Scope,
			cur.IssuedAt, cur.ExpiresAt, cur.ReuseUntil, cur.ClientID, cur.ReuseKey, stale).
			MapScanCASContext(actx, map[string]any{})
	}, func(ctx context.Context) (casOutcome, error) {
		out, _, err := s.slotOutcome(ctx, cur)
		// Anything but this call's token: not applied; look again.
		return casOutcome{applied: out.applied, decided: true}, err
	})
}

// slotOutcome reads cur's slot at the serial consistency after a claim
// whose outcome is unknown: it holds cur's token (applied), another one
// (not applied; that row is returned), or nothing (not applied yet).
func (s *Store) slotOutcome(ctx context.Context, cur *store.Current) (casOutcome, store.Current, error) {
	c := store.Current{ClientID: cur.ClientID, ReuseKey: cur.ReuseKey}
	found, err := s.serialRead(ctx, qSelectCurrent, []any{cur.ClientID, cur.ReuseKey},
		&c.TokenHash, &c.Sealed, &c.Scope, &c.IssuedAt, &c.ExpiresAt, &c.ReuseUntil)
	switch {
	case err != nil:
		return casOutcome{}, store.Current{}, err
	case !found:
		return casOutcome{}, store.Current{}, nil
	case bytes.Equal(c.TokenHash, cur.TokenHash):
		return casOutcome{applied: true, decided: true}, store.Current{}, nil
	}
	return casOutcome{decided: true}, c, nil
}

// release deletes the slot's row if it still holds cur's token: best
// effort, in the background, on its own deadline (the caller's context may
// be what failed, and the caller should not wait a second timeout when
// Cassandra hangs). Until it lands, or if it fails, the slot names a token
// that was never handed out, for at most its reuse window.
func (s *Store) release(ctx context.Context, cur *store.Current) {
	client, key, hash := cur.ClientID, cur.ReuseKey, bytes.Clone(cur.TokenHash)
	s.background(ctx, func(ctx context.Context) {
		_, _ = s.session.Query(qReleaseCurrent, client, key, hash).MapScanCASContext(ctx, map[string]any{})
	})
}

// background runs fn in its own goroutine on its own deadline (detached from
// ctx's cancellation), unless the store is closed; Close waits for it.
func (s *Store) background(ctx context.Context, fn func(context.Context)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	s.bgMu.Lock()
	if s.closed.Load() {
		s.bgMu.Unlock()
		cancel()
		return
	}
	s.bg.Add(1)
	s.bgMu.Unlock()
	go func() {
		defer s.bg.Done()
		defer cancel()
		fn(ctx)
	}()
}

// maybeApplied reports whether a failed lightweight transaction might still
// have been applied: not when the request never left (no connection, a
// value that does not marshal) or a coordinator refused it up front
// (unavailable, invalid).
func maybeApplied(err error) bool {
	if errors.Is(err, gocql.ErrNoConnections) || errors.Is(err, store.ErrClosed) {
		return false
	}
	var me gocql.MarshalError
	if errors.As(err, &me) {
		return false
	}
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeWriteTimeout, gocql.ErrCodeCASWriteUnknown, gocql.ErrCodeWriteFailure, gocql.ErrCodeServer:
			return true
		}
		return false
	}
	return true // client-side timeout, cancellation, connection lost mid-request
}

func currentFromMap(client, key string, m map[string]any) store.Current {
	c := store.Current{ClientID: client, ReuseKey: key}
	c.TokenHash, _ = m["token_hash"].([]byte)
	c.Sealed, _ = m["sealed"].([]byte)
	c.Scope, _ = m["scope"].(string)
	c.IssuedAt, _ = m["issued_at"].(time.Time)
	c.ExpiresAt, _ = m["expires_at"].(time.Time)
	c.ReuseUntil, _ = m["reuse_until"].(time.Time)
	return c
}

func cloneCurrent(c store.Current) store.Current {
	c.TokenHash = bytes.Clone(c.TokenHash)
	c.Sealed = bytes.Clone(c.Sealed)
	return c
}

// Current implements store.Tokens. Its reads degrade to one replica while
// a quorum is short (degraded.go).
func (s *Store) Current(ctx context.Context, clientID, reuseKey string) (store.Current, error) {
	if s.errClosed() {
		return store.Current{}, store.ErrClosed
	}
	c := store.Current{ClientID: clientID, ReuseKey: reuseKey}
	err := s.scanDegradable(ctx, qSelectCurrent, []any{clientID, reuseKey},
		&c.TokenHash, &c.Sealed, &c.Scope, &c.IssuedAt, &c.ExpiresAt, &c.ReuseUntil)
	if errors.Is(err, gocql.ErrNotFound) {
		return store.Current{}, store.ErrNotFound
	}
	if err != nil {
		return store.Current{}, classify("current", err)
	}
	if !s.now().Before(c.ReuseUntil) {
		return store.Current{}, store.ErrNotFound
	}
	switch ok, _, err := s.confirm(ctx, c, true, false); {
	case err != nil:
		return store.Current{}, err
	case !ok:
		return store.Current{}, store.ErrNotFound
	}
	return c, nil
}

// confirm reports whether a slot row may be handed out, so that no replica
// hands out a token the store does not hold: its token row is read, and
// must be stored and not revoked. A row claimed so recently that its token
// row may not be written yet (the winner writes it right after the claim,
// and gives the slot back if that write fails, both within two store
// timeouts; a second of margin for skew, issued-at being the winner's
// clock) is read again a few times when missing (the winner's write is
// milliseconds behind its claim). An older row is read once: on a cluster
// a claim whose outcome was unknown to its caller can be completed later
// by another Paxos round, leaving a row, of any age, that names a token
// nobody stored (issue 18's cluster test found one). revoked says that the
// token row is there, revoked (a revocation whose slot delete is on its
// way): such a row may be taken over at any age.
//
// degrade lets the token read drop to one replica while a quorum is short
// (degraded.go): for Current, whose "not found" only leads to a mint,
// which its lightweight transaction guards. The loser of a claim confirms
// at the read consistency, never degraded, since a "not found" there can
// lead to a takeover of the slot.
//
// patient (the loser of a claim, about to answer 503 otherwise) keeps
// reading a young row's missing token row for up to loserWait, within its
// deadline; Current reads it confirmReads times (its "not found" leads to
// the claim, whose loser waits).
func (s *Store) confirm(ctx context.Context, c store.Current, degrade, patient bool) (ok, revoked bool, err error) {
	young := s.young(c)
	reads := 1
	if young {
		reads = confirmReads
	}
	var until time.Time // patient: read until then
	if young && patient {
		until = time.Now().Add(loserWait)
		if dl, ok := ctx.Deadline(); ok && dl.Add(-confirmMargin).Before(until) {
			until = dl.Add(-confirmMargin)
		}
	}
	backoff := 5 * time.Millisecond
	for try := 0; ; try++ {
		t, err := s.token(ctx, c.TokenHash, degrade)
		switch {
		case err == nil:
			return !t.Revoked, t.Revoked, nil
		case !errors.Is(err, store.ErrNotFound):
			return false, false, err
		case try >= reads-1 && !time.Now().Add(backoff).Before(until):
			return false, false, nil
		}
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false, false, fmt.Errorf("cassandra: confirm slot token: %w", ctx.Err())
		case <-timer.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// young reports whether a slot row was claimed so recently that its token
// row may still be on its way: the winner's caller deadline (the server's
// store timeout, two seconds by default; resendBudget stands for it), the
// resends of an unknown outcome after it (execSure: at most resendBudget),
// the store timeout of one more attempt, and a second of skew (issued-at is
// the winner's clock).
func (s *Store) young(c store.Current) bool {
	return s.now().Sub(c.IssuedAt) < 2*resendBudget+s.timeout+time.Second
}

// Token implements store.Tokens. Its read degrades to one replica while a
// quorum is short (degraded.go).
func (s *Store) Token(ctx context.Context, hash []byte) (store.Token, error) {
	return s.token(ctx, hash, true)
}

// token reads a token row, degrading to one replica while a quorum is
// short only with degrade.
func (s *Store) token(ctx context.Context, hash []byte, degrade bool) (store.Token, error) {
	if s.errClosed() {
		return store.Token{}, store.ErrClosed
	}
	t := store.Token{Hash: bytes.Clone(hash)}
	dest := []any{&t.ClientID, &t.Scope, &t.ReuseKey, &t.IssuedAt, &t.ExpiresAt, &t.Revoked}
	var err error
	if degrade {
		err = s.scanDegradable(ctx, qSelectToken, []any{hash}, dest...)
	} else {
		err = s.idem(s.session.Query(qSelectToken, hash)).Consistency(s.readCons).ScanContext(ctx, dest...)
	}
	if errors.Is(err, gocql.ErrNotFound) {
		return store.Token{}, store.ErrNotFound
	}
	if err != nil {
		return store.Token{}, classify("token", err)
	}
	if !s.now().Before(t.ExpiresAt) {
		return store.Token{}, store.ErrNotFound
	}
	return t, nil
}

// TokenCount counts the unexpired tokens by scanning the whole table (for
// tests and benchmarks; it reads every row).
func (s *Store) TokenCount(ctx context.Context) (int, error) {
	if s.errClosed() {
		return 0, store.ErrClosed
	}
	iter := s.idem(s.session.Query(qTokenExpiry)).Consistency(s.readCons).PageSize(5000).IterContext(ctx)
	now := s.now()
	n := 0
	var exp time.Time
	for iter.Scan(&exp) {
		if now.Before(exp) {
			n++
		}
	}
	if err := iter.Close(); err != nil {
		return 0, classify("token count", err)
	}
	return n, nil
}
