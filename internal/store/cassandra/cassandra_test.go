//go:build cassandra

package cassandra_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/cassandra"
	"github.com/tokengw/tokengw/internal/store/storetest"
)

// TestConformance runs the store conformance suite against the real
// Cassandra on its real clock (TTLs are server-side). Each subtest gets a
// new Store (a new session) on this run's keyspace, emptied with TRUNCATE.
func TestConformance(t *testing.T) {
	cfg := sharedConfig(t)
	raw := rawSession(t)
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) store.Store {
			truncate(t, raw, cfg.Keyspace)
			return openStore(t, cfg)
		},
		Now: time.Now,
	})
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func tokenFor(client, key, label string, lifetime, window time.Duration) (store.Token, *store.Current) {
	now := time.Now().Truncate(time.Millisecond)
	tok := store.Token{Hash: hashOf(fmt.Sprintf("%s-%d", label, now.UnixNano())), ClientID: client, Scope: "read", ReuseKey: key,
		IssuedAt: now, ExpiresAt: now.Add(lifetime)}
	return tok, &store.Current{ClientID: client, ReuseKey: key, TokenHash: tok.Hash, Sealed: []byte("sealed-" + label),
		Scope: tok.Scope, IssuedAt: tok.IssuedAt, ExpiresAt: tok.ExpiresAt, ReuseUntil: tok.IssuedAt.Add(window)}
}

// TestReplicasRaceForOneSlot: two Stores (two sessions, as two gateway
// replicas would have) and 50 goroutines race Issue for one reuse slot.
// Exactly one claims it, every caller sees that winner, and exactly one
// token is persisted.
func TestReplicasRaceForOneSlot(t *testing.T) {
	cfg := sharedConfig(t)
	truncate(t, rawSession(t), cfg.Keyspace)
	replicas := []*cassandra.Store{openStore(t, cfg), openStore(t, cfg)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const n = 50
	var (
		wg      sync.WaitGroup
		claims  atomic.Int32
		start   = make(chan struct{})
		winners = make([][]byte, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, cur := tokenFor("race", "read", fmt.Sprintf("g%d", i), time.Hour, 30*time.Minute)
			<-start
			got, claimed, err := replicas[i%2].Issue(ctx, tok, cur)
			errs[i], winners[i] = err, got.TokenHash
			if claimed {
				claims.Add(1)
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d concurrent Issue calls on 2 sessions: %v", n, time.Since(t0).Round(time.Millisecond))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Issue %d: %v", i, err)
		}
	}
	if got := claims.Load(); got != 1 {
		t.Fatalf("%d callers claimed the slot, want exactly 1", got)
	}
	for i := range winners {
		if !bytes.Equal(winners[i], winners[0]) {
			t.Fatalf("caller %d saw winner %x, caller 0 saw %x", i, winners[i], winners[0])
		}
	}
	for i, r := range replicas {
		count, err := r.TokenCount(ctx)
		if err != nil {
			t.Fatalf("TokenCount: %v", err)
		}
		if count != 1 {
			t.Fatalf("replica %d: TokenCount = %d, want 1", i, count)
		}
		cur, err := r.Current(ctx, "race", "read")
		if err != nil || !bytes.Equal(cur.TokenHash, winners[0]) {
			t.Fatalf("replica %d: Current = %x, %v; want the winner %x", i, cur.TokenHash, err, winners[0])
		}
	}
}

// TestClaimAfterWindowBeforeTTL: a reuse row whose window has passed but
// whose TTL (whole seconds) has not is taken over by the next claim, as
// the memory store would (its row is dead once ReuseUntil passes).
func TestClaimAfterWindowBeforeTTL(t *testing.T) {
	cfg := sharedConfig(t)
	truncate(t, rawSession(t), cfg.Keyspace)
	s := openStore(t, cfg)
	ctx := context.Background()

	// A window of 300 ms: the row gets TTL 2 s and outlives its window.
	t1, c1 := tokenFor("c", "k", "first", time.Hour, 300*time.Millisecond)
	if _, claimed, err := s.Issue(ctx, t1, c1); err != nil || !claimed {
		t.Fatalf("Issue: claimed=%v err=%v", claimed, err)
	}
	for {
		_, err := s.Current(ctx, "c", "k")
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t2, c2 := tokenFor("c", "k", "second", time.Hour, time.Minute)
	got, claimed, err := s.Issue(ctx, t2, c2)
	if err != nil || !claimed || !bytes.Equal(got.TokenHash, t2.Hash) {
		t.Fatalf("Issue after the window: claimed=%v err=%v hash=%x", claimed, err, got.TokenHash)
	}
	have, err := s.Current(ctx, "c", "k")
	if err != nil || !bytes.Equal(have.TokenHash, t2.Hash) || !bytes.Equal(have.Sealed, c2.Sealed) || !have.ReuseUntil.Equal(c2.ReuseUntil) {
		t.Fatalf("Current = %+v, %v; want the second claim", have, err)
	}
	// The takeover carries the new TTL: the row is still there after the
	// first row's TTL (2 s, counted from the whole second it was written
	// in) would have ended. (A negative check: nothing to observe but the
	// passing of time.)
	deadline := c1.IssuedAt.Add(3 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.Current(ctx, "c", "k"); err != nil {
		t.Fatalf("Current after the first row's TTL: %v", err)
	}
}

// TestSlotRowLivesUntilWindowEnd: a slot row written late in a server
// second lives until its reuse window ends, and another replica's claim
// inside the window loses to it (issue 18: Cassandra counts a TTL from the
// whole second of the write, so a 1.5 s window claimed at x.9 s with TTL
// ceil(1.5 s) = 2 died at x+2 s, 0.4 s before its window ended, and the
// other replica's claim applied: two tokens for one window).
//
// The claim is made late in a wall-clock second and the test checks, by
// the row's write time, that the old rounding would have let it die
// before the moment it looks; it waits for the clock to reach that moment
// (nothing to observe but the passing of time).
func TestSlotRowLivesUntilWindowEnd(t *testing.T) {
	cfg := sharedConfig(t)
	raw := rawSession(t)
	truncate(t, raw, cfg.Keyspace)
	winner, other := openStore(t, cfg), openStore(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const window = 1500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			t.Fatal("no claim landed late enough in a server second to test the TTL rounding in 5 attempts")
		}
		// Late in a second: 900..950 ms.
		for now := time.Now(); now.Nanosecond() < 900e6 || now.Nanosecond() >= 950e6; now = time.Now() {
			time.Sleep(5 * time.Millisecond)
		}
		key := fmt.Sprintf("k%d", attempt)
		t1, c1 := tokenFor("c", key, "late", time.Hour, window)
		if _, claimed, err := winner.Issue(ctx, t1, c1); err != nil || !claimed {
			t.Fatalf("Issue: claimed=%v err=%v", claimed, err)
		}
		var wt int64 // the write's server timestamp, microseconds
		if err := raw.Query(fmt.Sprintf(`SELECT WRITETIME(token_hash) FROM %s.current_tokens WHERE client_id = 'c' AND reuse_key = ?`, cfg.Keyspace), key).
			Consistency(gocql.One).Scan(&wt); err != nil {
			t.Fatal(err)
		}
		look := c1.ReuseUntil.Add(-200 * time.Millisecond)
		// With the TTL rounded up alone (2 s), the row dies at the whole
		// second of the write plus 2.
		oldDeath := time.Unix(wt/1e6+2, 0)
		if !oldDeath.Before(look) {
			continue // the write slipped into the next second: try again
		}
		for time.Now().Before(look) {
			time.Sleep(10 * time.Millisecond)
		}
		cur, err := other.Current(ctx, "c", key)
		if err != nil || !bytes.Equal(cur.TokenHash, t1.Hash) {
			t.Fatalf("Current %v before the window ends (the old TTL died at %s): %+v, %v; want the claim",
				c1.ReuseUntil.Sub(time.Now()).Round(time.Millisecond), oldDeath.Format("15:04:05.000"), cur, err)
		}
		t2, c2 := tokenFor("c", key, "second", time.Hour, window)
		got, claimed, err := other.Issue(ctx, t2, c2)
		if err != nil || claimed || !bytes.Equal(got.TokenHash, t1.Hash) {
			t.Fatalf("a second claim inside the window: claimed=%v err=%v hash=%x; want the first claim", claimed, err, got.TokenHash)
		}
		return
	}
}

// TestRevokeKeepsNewerClaim: revoking a token whose slot has since
// been claimed by another token leaves that claim alone.
func TestRevokeKeepsNewerClaim(t *testing.T) {
	cfg := sharedConfig(t)
	truncate(t, rawSession(t), cfg.Keyspace)
	s := openStore(t, cfg)
	ctx := context.Background()
	t1, c1 := tokenFor("c", "k", "old", time.Hour, time.Minute)
	if _, _, err := s.Issue(ctx, t1, c1); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearCurrents(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	t2, c2 := tokenFor("c", "k", "new", time.Hour, time.Minute)
	if _, claimed, err := s.Issue(ctx, t2, c2); err != nil || !claimed {
		t.Fatalf("Issue after ClearCurrents: claimed=%v err=%v", claimed, err)
	}
	if err := s.Revoke(ctx, t1.Hash); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.Current(ctx, "c", "k"); err != nil || !bytes.Equal(cur.TokenHash, t2.Hash) {
		t.Fatalf("Current = %x, %v; want the newer claim", cur.TokenHash, err)
	}
}

// TestContextErrors: a context error comes back as itself.
func TestContextErrors(t *testing.T) {
	s := openStore(t, sharedConfig(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Token(ctx, hashOf("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Token(canceled) err = %v, want context.Canceled", err)
	}
	tok, cur := tokenFor("c", "k", "ctx", time.Hour, time.Minute)
	if _, _, err := s.Issue(ctx, tok, cur); !errors.Is(err, context.Canceled) {
		t.Fatalf("Issue(canceled) err = %v, want context.Canceled", err)
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	if err := s.Ping(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping(expired) err = %v, want DeadlineExceeded", err)
	}
}

// TestOddKeys: reuse keys are the scope and a fingerprint joined by NUL
// (reuse.ReuseKey); client ids are anything a client registered. Both are
// CQL text: they round-trip exactly, and slots that differ only after the
// NUL are different slots.
func TestOddKeys(t *testing.T) {
	cfg := sharedConfig(t)
	truncate(t, rawSession(t), cfg.Keyspace)
	s := openStore(t, cfg)
	ctx := context.Background()
	client := "client:with %odd+chars/ünï ' \" ;"
	for _, key := range []string{"read write\x00fp1", "read write\x00fp2", "", "read\x00"} {
		tok, cur := tokenFor(client, key, "odd"+key, time.Hour, time.Minute)
		if _, claimed, err := s.Issue(ctx, tok, cur); err != nil || !claimed {
			t.Fatalf("Issue(%q): claimed=%v err=%v", key, claimed, err)
		}
		got, err := s.Current(ctx, client, key)
		if err != nil || got.ReuseKey != key || got.ClientID != client || !bytes.Equal(got.TokenHash, tok.Hash) {
			t.Fatalf("Current(%q) = %+v, %v", key, got, err)
		}
		tk, err := s.Token(ctx, tok.Hash)
		if err != nil || tk.ReuseKey != key || tk.ClientID != client {
			t.Fatalf("Token = %+v, %v", tk, err)
		}
	}
}

// TestRevokeFromLaggingReplica: Cassandra orders two writes of one cell by
// their timestamps, which gocql takes from the writing replica's clock. A
// revocation written by a replica whose clock is behind the issuing
// replica's (here by 1 s, emulated with USING TIMESTAMP on exactly the
// statement Revoke runs) must still revoke the token: the token INSERT must
// not write a revoked = false cell that such a revocation loses against.
func TestRevokeFromLaggingReplica(t *testing.T) {
	cfg := sharedConfig(t)
	raw := rawSession(t)
	truncate(t, raw, cfg.Keyspace)
	s := openStore(t, cfg)
	ctx := context.Background()
	tok, _ := tokenFor("skew", "", "skew", time.Hour, 0)
	if _, _, err := s.Issue(ctx, tok, nil); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	lagging := time.Now().Add(-time.Second).UnixMicro()
	if err := raw.Query(fmt.Sprintf(`UPDATE %s.tokens USING TTL 3600 AND TIMESTAMP ? SET revoked = true WHERE token_hash = ?`, cfg.Keyspace),
		lagging, tok.Hash).Exec(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Token(ctx, tok.Hash)
	if err != nil || !got.Revoked {
		t.Fatalf("Token after a revocation from a replica 1 s behind = %+v, %v; want Revoked", got, err)
	}
	if n, err := s.RevokeClient(ctx, "skew"); err != nil || n != 0 {
		t.Fatalf("RevokeClient = %d, %v; want 0 (already revoked)", n, err)
	}
}

// TestSlotWithoutStoredTokenIsNotHandedOut: a mint whose token row cannot
// be written has claimed the slot already; until its release lands, the
// slot names a token the store does not hold. Neither Current nor the loser
// of a claim may return that token.
func TestSlotWithoutStoredTokenIsNotHandedOut(t *testing.T) {
	cfg := sharedConfig(t)
	truncate(t, rawSession(t), cfg.Keyspace)
	a, b := openStore(t, cfg), openStore(t, cfg)
	ctx := context.Background()

	tok, cur := tokenFor("unstored", "read", "bad", time.Hour, 30*time.Minute)
	tok.Scope = "bad \xff utf-8" // the tokens table refuses it; the claim's own scope is fine
	if _, claimed, err := a.Issue(ctx, tok, cur); err == nil || claimed {
		t.Fatalf("Issue with an unwritable token = claimed %v, %v; want an error", claimed, err)
	}
	if got, err := b.Current(ctx, "unstored", "read"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current on another replica = %x, %v; want ErrNotFound, never the unstored token", got.TokenHash, err)
	}

	// The loser's side, with the slot held for certain: a claim committed
	// by a replica whose token write has not landed (and whose release has
	// not either), written here as that replica's claim would be.
	ghost := hashOf("ghost")
	now := time.Now().Truncate(time.Millisecond)
	if err := rawSession(t).Query(fmt.Sprintf(`INSERT INTO %s.current_tokens (client_id, reuse_key, token_hash, sealed, scope, issued_at, expires_at, reuse_until)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL 600`, cfg.Keyspace),
		"ghost", "read", ghost, []byte("sealed"), "read", now, now.Add(time.Hour), now.Add(5*time.Minute)).Exec(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Current(ctx, "ghost", "read"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current of the ghost slot = %x, %v; want ErrNotFound", got.TokenHash, err)
	}
	tok2, cur2 := tokenFor("ghost", "read", "loser", time.Hour, 30*time.Minute)
	if got, claimed, err := b.Issue(ctx, tok2, cur2); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("the loser against the ghost slot = %x, claimed %v, %v; want ErrUnavailable, never the unstored token", got.TokenHash, claimed, err)
	}
	if n, err := b.TokenCount(ctx); err != nil || n != 0 {
		t.Fatalf("TokenCount = %d, %v; want 0 (the loser persists nothing)", n, err)
	}
}
