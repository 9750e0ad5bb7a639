package memory_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
	"github.com/tokengw/tokengw/internal/store/storetest"
)

// clock is a manual clock shared by the suite and the stores it creates.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d + time.Millisecond)
	c.mu.Unlock()
}

func TestConformance(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
	storetest.Run(t, storetest.Harness{
		New:     func(*testing.T) store.Store { return memory.New(memory.Options{Now: c.Now}) },
		Now:     c.Now,
		Advance: c.Advance,
	})
}

func testToken(now time.Time, client, reuseKey string, n int, lifetime time.Duration) store.Token {
	h := sha256.Sum256(fmt.Appendf(nil, "%s-%s-%d", client, reuseKey, n))
	return store.Token{Hash: h[:], ClientID: client, Scope: "read", ReuseKey: reuseKey, IssuedAt: now, ExpiresAt: now.Add(lifetime)}
}

func testCurrent(tok store.Token, window time.Duration) *store.Current {
	return &store.Current{ClientID: tok.ClientID, ReuseKey: tok.ReuseKey, TokenHash: tok.Hash, Sealed: []byte("s"),
		Scope: tok.Scope, IssuedAt: tok.IssuedAt, ExpiresAt: tok.ExpiresAt, ReuseUntil: tok.IssuedAt.Add(window)}
}

func wantHeld(t *testing.T, s *memory.Store, tokens, currents int) {
	t.Helper()
	if gotT, gotC, _ := memory.Held(s); gotT != tokens || gotC != currents {
		t.Fatalf("held %d tokens, %d reuse rows; want %d, %d", gotT, gotC, tokens, currents)
	}
}

// TestExpiredRowsDropped: a write deletes every token and reuse row expired
// by the store's clock (revoked ones too), and keeps the live ones, a token
// written again with a later expiry included.
func TestExpiredRowsDropped(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
	s := memory.New(memory.Options{Now: c.Now})
	for i := range 10 { // 1m tokens, the first 4 with a 30s reuse row
		tok := testToken(c.Now(), "a", fmt.Sprintf("k%d", i), i, time.Minute)
		var cur *store.Current
		if i < 4 {
			cur = testCurrent(tok, 30*time.Second)
		}
		if _, _, err := s.Issue(ctx, tok, cur); err != nil {
			t.Fatal(err)
		}
		if i == 9 {
			if err := s.Revoke(ctx, tok.Hash); err != nil {
				t.Fatal(err)
			}
		}
	}
	again := testToken(c.Now(), "a", "again", 0, time.Minute)
	if _, _, err := s.Issue(ctx, again, nil); err != nil {
		t.Fatal(err)
	}
	again.ExpiresAt = again.ExpiresAt.Add(time.Hour) // written again, later expiry
	if _, _, err := s.Issue(ctx, again, nil); err != nil {
		t.Fatal(err)
	}
	long := testToken(c.Now(), "b", "k", 0, time.Hour)
	if _, _, err := s.Issue(ctx, long, testCurrent(long, 30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, s, 12, 5)

	c.Advance(30 * time.Second) // the short reuse rows expire; reads leave them
	if _, err := s.Current(ctx, "a", "k0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current after its window: %v", err)
	}
	wantHeld(t, s, 12, 5)
	if err := s.ClearCurrents(ctx, "nobody"); err != nil { // a write
		t.Fatal(err)
	}
	wantHeld(t, s, 12, 1)

	c.Advance(30 * time.Second)                      // the 1m tokens expire, the revoked one too
	if err := s.Revoke(ctx, long.Hash); err != nil { // a write
		t.Fatal(err)
	}
	wantHeld(t, s, 2, 0) // again (1h), long (revoked, 1h)
	if tok, err := s.Token(ctx, again.Hash); err != nil || !tok.ExpiresAt.Equal(again.ExpiresAt) {
		t.Fatalf("the token written again: %+v, %v", tok, err)
	}
	if tok, err := s.Token(ctx, long.Hash); err != nil || !tok.Revoked {
		t.Fatalf("the revoked live token: %+v, %v", tok, err)
	}

	c.Advance(time.Hour)
	if _, err := s.RevokeClient(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, s, 0, 0)
	if _, _, entries := memory.Held(s); entries != 0 {
		t.Fatalf("%d heap entries left", entries)
	}
}

// TestBounded: issuing 10,000 tokens of a 60s lifetime, one a second of the
// injected clock, each with a 10s reuse row, the store never holds more
// than the 60 live tokens and 10 live reuse rows (plus the one being
// written), nor its heaps more entries than that.
func TestBounded(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
	s := memory.New(memory.Options{Now: c.Now})
	for i := range 10000 {
		if i > 0 {
			c.Advance(time.Second - time.Millisecond) // Advance adds a millisecond
		}
		tok := testToken(c.Now(), "a", fmt.Sprintf("k%d", i), i, 60*time.Second)
		if _, claimed, err := s.Issue(ctx, tok, testCurrent(tok, 10*time.Second)); err != nil || !claimed {
			t.Fatalf("Issue %d: %v, %v", i, claimed, err)
		}
		tokens, currents, entries := memory.Held(s)
		if tokens > 61 || currents > 11 || entries > 72 {
			t.Fatalf("after %d tokens: %d tokens, %d reuse rows, %d heap entries held", i+1, tokens, currents, entries)
		}
	}
	if n := s.TokenCount(); n != 60 {
		t.Fatalf("TokenCount = %d, want 60", n)
	}
}
