package bolt_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/bolt"
	"github.com/tokengw/tokengw/internal/store/storetest"
)

// clock is a manual clock shared by a test and the stores it opens.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock by d plus a millisecond, so that something that
// expires after d has expired (the storetest contract).
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d + time.Millisecond)
	c.mu.Unlock()
}

// open opens a store at path and closes it when the test ends.
func open(t testing.TB, path string, opts bolt.Options) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "tokengw.db") }

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sweep time.Duration
	}{
		{"NoSweeper", -1},
		// The sweeper running every millisecond alongside the suite: it
		// must never take a live row.
		{"SweeperRunning", time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			storetest.Run(t, storetest.Harness{
				New: func(t *testing.T) store.Store {
					s, err := bolt.Open(dbPath(t), bolt.Options{Now: c.Now, SweepInterval: tc.sweep})
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					return s
				},
				Now:     c.Now,
				Advance: c.Advance,
			})
		})
	}
}

var seq atomic.Uint64

func hashOf(label string) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "%s-%d", label, seq.Add(1)))
	return h[:]
}

func token(now time.Time, client, reuseKey string, lifetime time.Duration) store.Token {
	now = now.Truncate(time.Millisecond)
	return store.Token{
		Hash: hashOf(client), ClientID: client, Scope: "read", ReuseKey: reuseKey,
		IssuedAt: now, ExpiresAt: now.Add(lifetime),
	}
}

func currentOf(tok store.Token, window time.Duration) *store.Current {
	return &store.Current{
		ClientID: tok.ClientID, ReuseKey: tok.ReuseKey, TokenHash: tok.Hash,
		Sealed: []byte("sealed"), Scope: tok.Scope,
		IssuedAt: tok.IssuedAt, ExpiresAt: tok.ExpiresAt, ReuseUntil: tok.IssuedAt.Add(window),
	}
}

func issue(t testing.TB, s *bolt.Store, tok store.Token, cur *store.Current) {
	t.Helper()
	if _, claimed, err := s.Issue(context.Background(), tok, cur); err != nil || (cur != nil && !claimed) {
		t.Fatalf("Issue: claimed=%v err=%v", claimed, err)
	}
}

func tokenCount(t testing.TB, s *bolt.Store) int {
	t.Helper()
	n, err := s.TokenCount(context.Background())
	if err != nil {
		t.Fatalf("TokenCount: %v", err)
	}
	return n
}

// TestReopen: tokens (revoked or not), reuse rows and clients survive a
// restart.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	path := dbPath(t)
	s, err := bolt.Open(path, bolt.Options{Now: c.Now, SweepInterval: -1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	live := token(c.Now(), "alpha", "read", time.Hour)
	cur := currentOf(live, 30*time.Minute)
	issue(t, s, live, cur)
	revoked := token(c.Now(), "alpha", "", time.Hour)
	issue(t, s, revoked, nil)
	if err := s.Revoke(ctx, revoked.Hash); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	now := c.Now()
	client := store.Client{ID: "alpha", SecretHash: "$2a$10$abc", Scopes: []string{"read", "write"},
		TokenTTL: 90 * time.Second, Limit: &store.Limit{Rate: 2.5, Burst: 5}, Introspect: true, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateClient(ctx, client); err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path, bolt.Options{Now: c.Now, SweepInterval: -1})
	got, err := s.Token(ctx, live.Hash)
	if err != nil || got.Revoked || !got.ExpiresAt.Equal(live.ExpiresAt) || got.ClientID != "alpha" || got.ReuseKey != "read" {
		t.Fatalf("Token(live) after reopen = %+v, %v", got, err)
	}
	got, err = s.Token(ctx, revoked.Hash)
	if err != nil || !got.Revoked {
		t.Fatalf("Token(revoked) after reopen = %+v, %v; want revoked", got, err)
	}
	have, err := s.Current(ctx, "alpha", "read")
	if err != nil || !bytes.Equal(have.TokenHash, live.Hash) || !bytes.Equal(have.Sealed, cur.Sealed) ||
		!have.ReuseUntil.Equal(cur.ReuseUntil) {
		t.Fatalf("Current after reopen = %+v, %v", have, err)
	}
	gotClient, err := s.Client(ctx, "alpha")
	if err != nil || gotClient.SecretHash != client.SecretHash || gotClient.TokenTTL != client.TokenTTL ||
		gotClient.Limit == nil || *gotClient.Limit != *client.Limit || !gotClient.Introspect ||
		fmt.Sprint(gotClient.Scopes) != fmt.Sprint(client.Scopes) || !gotClient.CreatedAt.Equal(now) {
		t.Fatalf("Client after reopen = %+v, %v", gotClient, err)
	}
	// The claim is still exclusive after the restart.
	other := token(c.Now(), "alpha", "read", time.Hour)
	if _, claimed, err := s.Issue(ctx, other, currentOf(other, time.Minute)); err != nil || claimed {
		t.Fatalf("Issue on a held slot after reopen: claimed=%v err=%v", claimed, err)
	}
	if n := tokenCount(t, s); n != 2 {
		t.Fatalf("TokenCount after reopen = %d, want 2", n)
	}
}

// TestSweep: Sweep deletes expired tokens (revoked or not), expired reuse
// rows and their index entries, in several chunks, and keeps live rows.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := open(t, dbPath(t), bolt.Options{Now: c.Now, SweepInterval: -1, SweepChunk: 2})

	var short, long []store.Token
	for i := range 5 { // expire in 1m; three hold a reuse slot for 30s
		tok := token(c.Now(), "c", fmt.Sprintf("k%d", i), time.Minute)
		var cur *store.Current
		if i < 3 {
			cur = currentOf(tok, 30*time.Second)
		}
		issue(t, s, tok, cur)
		short = append(short, tok)
	}
	if err := s.Revoke(ctx, short[4].Hash); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	for i := range 2 { // live for an hour, one with a 30m reuse slot
		tok := token(c.Now(), "d", fmt.Sprintf("k%d", i), time.Hour)
		var cur *store.Current
		if i == 0 {
			cur = currentOf(tok, 30*time.Minute)
		}
		issue(t, s, tok, cur)
		long = append(long, tok)
	}
	if n := tokenCount(t, s); n != 7 {
		t.Fatalf("TokenCount = %d, want 7", n)
	}

	// Nothing has expired yet.
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep before expiry = %d, %v; want 0", n, err)
	}

	// After 30s the three short reuse rows go; their tokens stay.
	c.Advance(30 * time.Second)
	if n, err := s.Sweep(ctx); err != nil || n != 3 {
		t.Fatalf("Sweep after the reuse window = %d, %v; want 3 reuse rows", n, err)
	}
	wantLens(t, s, map[string]int{bolt.BucketTokens: 7, bolt.BucketExpiry: 7, bolt.BucketByClient: 7, bolt.BucketCurrent: 1, bolt.BucketCurrentExpiry: 1})
	for _, tok := range short {
		if _, err := s.Token(ctx, tok.Hash); err != nil {
			t.Fatalf("token swept with its reuse row: %v", err)
		}
	}

	// After 1m the five short tokens go, the revoked one included.
	c.Advance(30 * time.Second)
	if n := tokenCount(t, s); n != 2 {
		t.Fatalf("TokenCount after 1m = %d, want 2", n)
	}
	if n, err := s.Sweep(ctx); err != nil || n != 5 {
		t.Fatalf("Sweep after 1m = %d, %v; want 5 tokens", n, err)
	}
	wantLens(t, s, map[string]int{bolt.BucketTokens: 2, bolt.BucketExpiry: 2, bolt.BucketByClient: 2, bolt.BucketCurrent: 1, bolt.BucketCurrentExpiry: 1})
	for _, tok := range long {
		if _, err := s.Token(ctx, tok.Hash); err != nil {
			t.Fatalf("live token swept: %v", err)
		}
	}
	if _, err := s.Current(ctx, "d", "k0"); err != nil {
		t.Fatalf("live reuse row swept: %v", err)
	}
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second Sweep = %d, %v; want 0", n, err)
	}

	// After an hour, everything.
	c.Advance(time.Hour)
	if n, err := s.Sweep(ctx); err != nil || n != 3 {
		t.Fatalf("Sweep after 1h = %d, %v; want 3", n, err)
	}
	wantLens(t, s, map[string]int{bolt.BucketTokens: 0, bolt.BucketExpiry: 0, bolt.BucketByClient: 0, bolt.BucketCurrent: 0, bolt.BucketCurrentExpiry: 0})
}

func wantLens(t *testing.T, s *bolt.Store, want map[string]int) {
	t.Helper()
	for bucket, n := range want {
		if got := bolt.BucketLen(t, s, bucket); got != n {
			t.Errorf("bucket %s has %d keys, want %d", bucket, got, n)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestSweepKeepsReplacedSlot: a slot re-claimed after its window has one
// index entry, for the new row; sweeping the old window keeps the new row.
func TestSweepKeepsReplacedSlot(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := open(t, dbPath(t), bolt.Options{Now: c.Now, SweepInterval: -1})
	t1 := token(c.Now(), "c", "k", time.Hour)
	issue(t, s, t1, currentOf(t1, time.Minute))
	c.Advance(time.Minute)
	t2 := token(c.Now(), "c", "k", time.Hour)
	issue(t, s, t2, currentOf(t2, time.Minute))
	wantLens(t, s, map[string]int{bolt.BucketCurrent: 1, bolt.BucketCurrentExpiry: 1})
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep = %d, %v; want 0", n, err)
	}
	if got, err := s.Current(ctx, "c", "k"); err != nil || !bytes.Equal(got.TokenHash, t2.Hash) {
		t.Fatalf("Current = %x, %v; want the second token", got.TokenHash, err)
	}
}

// TestBackgroundSweeper: the sweeper deletes expired rows on its own and
// reports through OnSweep; Close stops it and waits for it.
func TestBackgroundSweeper(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	swept := make(chan int, 16)
	s, err := bolt.Open(dbPath(t), bolt.Options{
		Now: c.Now, SweepInterval: time.Millisecond,
		OnSweep: func(n int, err error) {
			if err != nil {
				t.Errorf("background sweep: %v", err)
			}
			if n > 0 {
				swept <- n
			}
		},
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	tok := token(c.Now(), "c", "k", time.Minute)
	issue(t, s, tok, currentOf(tok, time.Minute))
	c.Advance(time.Minute)
	// The token and its reuse row, in one run or two (the clock may move
	// between the two indexes of a run).
	timeout := time.After(10 * time.Second)
	for total := 0; total < 2; {
		select {
		case n := <-swept:
			total += n
		case <-timeout:
			t.Fatalf("the background sweeper deleted %d of the 2 expired rows", total)
		}
	}
	wantLens(t, s, map[string]int{bolt.BucketTokens: 0, bolt.BucketExpiry: 0, bolt.BucketByClient: 0, bolt.BucketCurrent: 0, bolt.BucketCurrentExpiry: 0})

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-bolt.SweeperDone(s):
	default:
		t.Fatalf("Close returned while the sweeper goroutine was still running")
	}
	if _, err := s.Sweep(ctx); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Sweep after Close: err = %v, want ErrClosed", err)
	}
}

// TestCloseWithoutSweeper: a store whose sweeper is disabled closes too.
func TestCloseWithoutSweeper(t *testing.T) {
	s, err := bolt.Open(dbPath(t), bolt.Options{SweepInterval: -1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestLocked: a second Open of a file in use fails within its timeout with
// ErrLocked; once the first store is closed, it succeeds.
func TestLocked(t *testing.T) {
	path := dbPath(t)
	first, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	start := time.Now()
	second, err := bolt.Open(path, bolt.Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		_ = second.Close()
		t.Fatalf("second Open of a locked file succeeded")
	}
	if !errors.Is(err, bolt.ErrLocked) {
		t.Fatalf("second Open: err = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %v, want about its 100ms timeout", d)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	open(t, path, bolt.Options{Timeout: 100 * time.Millisecond})
}

// TestFileModes: the file is 0600 and a missing directory is created 0700.
func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "db")
	path := filepath.Join(dir, "tokengw.db")
	open(t, path, bolt.Options{SweepInterval: -1})
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{{path, 0o600}, {dir, 0o700 | os.ModeDir}} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		if fi.Mode() != tc.want {
			t.Errorf("%s: mode %v, want %v", tc.path, fi.Mode(), tc.want)
		}
	}
}

// TestClosed: after Close every method returns store.ErrClosed.
func TestClosed(t *testing.T) {
	ctx := context.Background()
	s, err := bolt.Open(dbPath(t), bolt.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	tok := token(time.Now(), "c", "k", time.Hour)
	calls := map[string]func() error{
		"Issue":         func() error { _, _, err := s.Issue(ctx, tok, currentOf(tok, time.Minute)); return err },
		"Current":       func() error { _, err := s.Current(ctx, "c", "k"); return err },
		"Token":         func() error { _, err := s.Token(ctx, tok.Hash); return err },
		"Revoke":        func() error { return s.Revoke(ctx, tok.Hash) },
		"ClearCurrents": func() error { return s.ClearCurrents(ctx, "c") },
		"RevokeClient":  func() error { _, err := s.RevokeClient(ctx, "c"); return err },
		"Client":        func() error { _, err := s.Client(ctx, "c"); return err },
		"Clients":       func() error { _, err := s.Clients(ctx); return err },
		"CreateClient":  func() error { return s.CreateClient(ctx, store.Client{ID: "c"}) },
		"UpdateClient":  func() error { return s.UpdateClient(ctx, store.Client{ID: "c"}, time.Time{}) },
		"DeleteClient":  func() error { return s.DeleteClient(ctx, "c") },
		"Ping":          func() error { return s.Ping(ctx) },
		"Sweep":         func() error { _, err := s.Sweep(ctx); return err },
		"TokenCount":    func() error { _, err := s.TokenCount(ctx); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseDuringLoad: Close while writers and readers are running; every
// call either succeeds or returns ErrClosed, nothing hangs or races.
func TestCloseDuringLoad(t *testing.T) {
	ctx := context.Background()
	s, err := bolt.Open(dbPath(t), bolt.Options{SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	var wg sync.WaitGroup
	started := make(chan struct{}, 8)
	for i := range 8 {
		wg.Go(func() {
			for j := 0; ; j++ {
				tok := token(time.Now(), fmt.Sprintf("c%d", i), fmt.Sprintf("k%d", j%4), time.Hour)
				_, _, err := s.Issue(ctx, tok, currentOf(tok, time.Minute))
				if err == nil {
					_, err = s.Current(ctx, tok.ClientID, tok.ReuseKey)
				}
				if j == 0 {
					started <- struct{}{}
				}
				if errors.Is(err, store.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("during Close: %v", err)
					return
				}
			}
		})
	}
	for range 8 {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
}

// TestCorruptRecord: a row this build cannot decode fails the calls that
// touch it with a plain error (not ErrUnavailable, not ErrNotFound), and a
// failing write does not disturb the writes committed with it: the
// committer runs the others again, and each still claims its slot exactly
// once. The committer is held while the 16 writes queue, so that they are
// one batch.
func TestCorruptRecord(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := open(t, dbPath(t), bolt.Options{Now: c.Now, SweepInterval: -1})
	bolt.PutRaw(t, s, bolt.BucketCurrent, bolt.SlotKey("bad", "k"), []byte{99, 1, 2})
	bad := make([]byte, 32)
	bolt.PutRaw(t, s, bolt.BucketTokens, bad, []byte{1})

	const n = 16
	taken, queued, release := bolt.HoldCommitter(s)
	defer release()
	plug := token(c.Now(), "plug", "", time.Hour)
	plugDone := make(chan error, 1)
	go func() { _, _, err := s.Issue(ctx, plug, nil); plugDone <- err }()
	if size := <-taken; size != 1 {
		t.Fatalf("first batch has %d writes, want the plug alone", size)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	claimed := make([]bool, n)
	toks := make([]store.Token, n)
	for i := range n {
		client := "good"
		if i == 0 {
			client = "bad"
		}
		toks[i] = token(c.Now(), client, fmt.Sprintf("k%d", i), time.Hour)
		if i == 0 {
			toks[i].ReuseKey = "k"
		}
		wg.Go(func() {
			_, claimed[i], errs[i] = s.Issue(ctx, toks[i], currentOf(toks[i], time.Minute))
		})
	}
	for q := 0; q < n; q = <-queued {
	}
	release()
	wg.Wait()
	if err := <-plugDone; err != nil {
		t.Fatalf("Issue(plug): %v", err)
	}
	if size := <-taken; size != n {
		t.Fatalf("the %d writes were taken in a batch of %d", n, size)
	}
	if errs[0] == nil || errors.Is(errs[0], store.ErrUnavailable) || errors.Is(errs[0], store.ErrNotFound) {
		t.Fatalf("Issue on a corrupt slot: err = %v, want a plain error", errs[0])
	}
	if _, err := s.Token(ctx, toks[0].Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the failed Issue persisted its token: %v", err)
	}
	for i := 1; i < n; i++ {
		if errs[i] != nil || !claimed[i] {
			t.Fatalf("Issue %d batched with a failing one: claimed=%v err=%v", i, claimed[i], errs[i])
		}
		if _, err := s.Token(ctx, toks[i].Hash); err != nil {
			t.Fatalf("Token %d: %v", i, err)
		}
	}
	if _, err := s.Token(ctx, bad); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Token(corrupt): err = %v, want a decoding error", err)
	}
	if _, err := s.Current(ctx, "bad", "k"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current(corrupt): err = %v, want a decoding error", err)
	}
	// ClearCurrents drops the corrupt row.
	if err := s.ClearCurrents(ctx, "bad"); err != nil {
		t.Fatalf("ClearCurrents: %v", err)
	}
	if _, err := s.Current(ctx, "bad", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current after ClearCurrents: err = %v, want ErrNotFound", err)
	}
}

// TestSchemaVersion: a new file is written with layout 2; a file written
// by a newer layout is refused at Open.
func TestSchemaVersion(t *testing.T) {
	path := dbPath(t)
	s, err := bolt.Open(path, bolt.Options{SweepInterval: -1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if v := bolt.SchemaOf(t, path); !bytes.Equal(v, []byte{2}) {
		t.Fatalf("schema of a new file = %v, want [2]", v)
	}
	s = open(t, path, bolt.Options{SweepInterval: -1})
	bolt.PutRaw(t, s, bolt.BucketMeta, []byte(bolt.KeySchema), []byte{3})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s, err := bolt.Open(path, bolt.Options{SweepInterval: -1}); err == nil {
		_ = s.Close()
		t.Fatalf("Open of a schema-3 file succeeded")
	}
}

// TestUpgradeV1File: testdata/v1.db.gz was written by tokengw before the
// by_client index (layout 1, commit df077fe) at 2026-11-24T08:00Z:
//
//	alpha-1, alpha-2  client alpha, 1h, reuse slots k1, k2 (30m window)
//	alpha-3           client alpha, 1h, no reuse
//	alpha-4           client alpha, 1h, revoked
//	alpha-5           client alpha, 1m
//	beta-1            client beta, 1h, reuse slot k1
//	beta-2            client beta, 1h
//	client alpha registered
//
// (token hashes are SHA-256 of the labels). Open upgrades it in place to
// layout 2, and everything works on it, RevokeClient included.
func TestUpgradeV1File(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	gz, err := os.Open(filepath.Join("testdata", "v1.db.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if v := bolt.SchemaOf(t, path); !bytes.Equal(v, []byte{1}) {
		t.Fatalf("testdata schema = %v, want [1]", v)
	}
	c := newClock() // 08:00
	c.Advance(5 * time.Minute)
	s := open(t, path, bolt.Options{Now: c.Now, SweepInterval: -1, SweepChunk: 2})
	wantLens(t, s, map[string]int{bolt.BucketTokens: 7, bolt.BucketExpiry: 7, bolt.BucketByClient: 7})
	h := func(label string) []byte { x := sha256.Sum256([]byte(label)); return x[:] }

	// What was there still is.
	if cl, err := s.Client(ctx, "alpha"); err != nil || cl.SecretHash != "$2a$10$abc" {
		t.Fatalf("Client(alpha) = %+v, %v", cl, err)
	}
	if cur, err := s.Current(ctx, "beta", "k1"); err != nil || !bytes.Equal(cur.TokenHash, h("beta-1")) {
		t.Fatalf("Current(beta,k1) = %x, %v", cur.TokenHash, err)
	}
	if tok, err := s.Token(ctx, h("alpha-4")); err != nil || !tok.Revoked {
		t.Fatalf("Token(alpha-4) = %+v, %v; want revoked", tok, err)
	}

	// alpha-1, 2, 3 are live and unrevoked; 4 is revoked, 5 has expired.
	n, err := s.RevokeClient(ctx, "alpha")
	if err != nil || n != 3 {
		t.Fatalf("RevokeClient(alpha) = %d, %v; want 3", n, err)
	}
	for _, label := range []string{"alpha-1", "alpha-2", "alpha-3", "alpha-4"} {
		if tok, err := s.Token(ctx, h(label)); err != nil || !tok.Revoked {
			t.Fatalf("Token(%s) = %+v, %v; want revoked", label, tok, err)
		}
	}
	for _, label := range []string{"beta-1", "beta-2"} {
		if tok, err := s.Token(ctx, h(label)); err != nil || tok.Revoked {
			t.Fatalf("Token(%s) = %+v, %v; want live", label, tok, err)
		}
	}
	if _, err := s.Current(ctx, "alpha", "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current(alpha,k1) after RevokeClient: %v", err)
	}
	// New tokens are indexed; the sweeper drops the old ones' entries.
	tok := token(c.Now(), "alpha", "k1", time.Hour)
	tok.Hash = h("alpha-new") // token() could make "alpha-1"'s
	issue(t, s, tok, currentOf(tok, time.Minute))
	if n, err := s.Sweep(ctx); err != nil || n != 1 { // alpha-5
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	wantLens(t, s, map[string]int{bolt.BucketTokens: 7, bolt.BucketExpiry: 7, bolt.BucketByClient: 7})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := bolt.SchemaOf(t, path); !bytes.Equal(v, []byte{2}) {
		t.Fatalf("schema after the upgrade = %v, want [2]", v)
	}
	// Reopened: no second upgrade, the index is intact.
	s = open(t, path, bolt.Options{Now: c.Now, SweepInterval: -1})
	if n, err := s.RevokeClient(ctx, "alpha"); err != nil || n != 1 {
		t.Fatalf("RevokeClient(alpha) after reopen = %d, %v; want 1 (the new token)", n, err)
	}
}

// TestUpgradeManyTokens: the upgrade of a layout-1 file indexes every token,
// over many chunks, and RevokeClient finds all of them after it.
func TestUpgradeManyTokens(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	path := dbPath(t)
	s, err := bolt.Open(path, bolt.Options{Now: c.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	const perClient = 50
	var wg sync.WaitGroup
	for i := range 2 * perClient {
		wg.Go(func() {
			client := []string{"a", "b"}[i%2]
			tok := token(c.Now(), client, fmt.Sprintf("k%d", i), time.Hour)
			var cur *store.Current
			if i%3 == 0 {
				cur = currentOf(tok, time.Minute)
			}
			issue(t, s, tok, cur)
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	bolt.MakeV1(t, path)
	s = open(t, path, bolt.Options{Now: c.Now, SweepInterval: -1, SweepChunk: 7})
	wantLens(t, s, map[string]int{bolt.BucketTokens: 2 * perClient, bolt.BucketByClient: 2 * perClient})
	if n, err := s.RevokeClient(ctx, "a"); err != nil || n != perClient {
		t.Fatalf("RevokeClient(a) = %d, %v; want %d", n, err, perClient)
	}
	if n, err := s.RevokeClient(ctx, "b"); err != nil || n != perClient {
		t.Fatalf("RevokeClient(b) = %d, %v; want %d", n, err, perClient)
	}
}

// TestRevokeClientChunks: RevokeClient over several transactions counts
// each live, unrevoked token once, leaves expired and revoked ones, drops
// index entries that point at nothing and deletes a token row that does
// not decode (an unknown token is inactive).
func TestRevokeClientChunks(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := open(t, dbPath(t), bolt.Options{Now: c.Now, SweepInterval: -1, SweepChunk: 3})
	var live []store.Token
	for i := range 10 {
		tok := token(c.Now(), "c", fmt.Sprintf("k%d", i), time.Hour+time.Duration(i)*time.Second)
		var cur *store.Current
		if i < 4 {
			cur = currentOf(tok, 30*time.Minute)
		}
		issue(t, s, tok, cur)
		live = append(live, tok)
	}
	if err := s.Revoke(ctx, live[5].Hash); err != nil {
		t.Fatal(err)
	}
	expired := token(c.Now(), "c", "", time.Minute)
	issue(t, s, expired, nil)
	other := token(c.Now(), "c2", "k0", time.Hour)
	issue(t, s, other, currentOf(other, 30*time.Minute))
	exp := c.Now().Add(2 * time.Hour).Truncate(time.Millisecond)
	orphan := hashOf("orphan")
	bolt.PutRaw(t, s, bolt.BucketByClient, bolt.ByClientKey("c", exp, orphan), nil)
	corrupt := hashOf("corrupt")
	bolt.PutRaw(t, s, bolt.BucketTokens, corrupt, []byte{1})
	bolt.PutRaw(t, s, bolt.BucketByClient, bolt.ByClientKey("c", exp, corrupt), nil)
	c.Advance(time.Minute)

	n, err := s.RevokeClient(ctx, "c")
	if err != nil || n != 9+1 { // 10 live, one of them revoked before; the corrupt row
		t.Fatalf("RevokeClient = %d, %v; want 10", n, err)
	}
	for _, tok := range live {
		if got, err := s.Token(ctx, tok.Hash); err != nil || !got.Revoked {
			t.Fatalf("Token = %+v, %v; want revoked", got, err)
		}
	}
	if _, err := s.Token(ctx, corrupt); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Token(corrupt) after RevokeClient: %v, want ErrNotFound", err)
	}
	if got, err := s.Token(ctx, other.Hash); err != nil || got.Revoked {
		t.Fatalf("Token(other client) = %+v, %v", got, err)
	}
	if _, err := s.Current(ctx, "c2", "k0"); err != nil {
		t.Fatalf("Current(c2) after RevokeClient(c): %v", err)
	}
	// 10 live + the expired one + c2's; the orphan and corrupt entries went.
	wantLens(t, s, map[string]int{bolt.BucketByClient: 12, bolt.BucketCurrent: 1, bolt.BucketCurrentExpiry: 1})
	if n, err := s.RevokeClient(ctx, "c"); err != nil || n != 0 {
		t.Fatalf("second RevokeClient = %d, %v; want 0", n, err)
	}
	// The sweeper removes the expired token's entry; the revoked ones stay
	// indexed until they expire.
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	wantLens(t, s, map[string]int{bolt.BucketByClient: 11})
	c.Advance(2 * time.Hour)
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	wantLens(t, s, map[string]int{bolt.BucketTokens: 0, bolt.BucketExpiry: 0, bolt.BucketByClient: 0})
}

// TestNulClientID: client ids are VSCHAR; one with NUL cannot hold a slot
// (the slot key separates client and reuse key with NUL).
func TestNulClientID(t *testing.T) {
	ctx := context.Background()
	s := open(t, dbPath(t), bolt.Options{SweepInterval: -1})
	tok := token(time.Now(), "a\x00b", "k", time.Hour)
	if _, _, err := s.Issue(ctx, tok, currentOf(tok, time.Minute)); err == nil {
		t.Fatalf("Issue with a NUL in the client id succeeded")
	}
	if _, _, err := s.Issue(ctx, tok, nil); err == nil {
		t.Fatalf("Issue without reuse, with a NUL in the client id succeeded")
	}
	if n, err := s.RevokeClient(ctx, "a\x00b"); err != nil || n != 0 {
		t.Fatalf("RevokeClient(a\\x00b) = %d, %v; want 0, nil", n, err)
	}
	ok := token(time.Now(), "a", "b\x00k", time.Hour)
	issue(t, s, ok, currentOf(ok, time.Minute))
	if err := s.ClearCurrents(ctx, "a\x00b"); err != nil {
		t.Fatalf("ClearCurrents: %v", err)
	}
	if _, err := s.Current(ctx, "a", "b\x00k"); err != nil {
		t.Fatalf("ClearCurrents(a\\x00b) removed a's row: %v", err)
	}
	if _, err := s.Current(ctx, "a\x00b", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current(a\\x00b): err = %v, want ErrNotFound", err)
	}
}

// BenchmarkIssue: concurrent mints without reuse (cur nil). Writers share
// transactions and fsyncs through the group committer ("group"), or, to
// measure against, through bbolt's DB.Batch with its 10ms MaxBatchDelay
// ("dbbatch", the path before group commit); the sub-benchmark name ends in
// the number of writer goroutines per GOMAXPROCS:
//
//	go test -run '^$' -bench Issue ./internal/store/bolt/
func BenchmarkIssue(b *testing.B) {
	for _, bc := range []struct {
		mode string
		par  int
	}{{"group", 1}, {"dbbatch", 1}, {"group", 16}, {"dbbatch", 16}, {"group", 128}, {"dbbatch", 128}} {
		b.Run(fmt.Sprintf("%s/par%d", bc.mode, bc.par), func(b *testing.B) {
			par := bc.par
			s := open(b, dbPath(b), bolt.Options{SweepInterval: -1})
			if bc.mode == "dbbatch" {
				bolt.UseDBBatch(s)
			}
			ctx := context.Background()
			var n atomic.Uint64
			b.SetParallelism(par)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				now := time.Now().Truncate(time.Millisecond)
				for pb.Next() {
					var h [32]byte
					binary.BigEndian.PutUint64(h[:], n.Add(1))
					tok := store.Token{Hash: h[:], ClientID: "bench", Scope: "read write",
						IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
					if _, _, err := s.Issue(ctx, tok, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkCurrent: concurrent reuse-row reads over 1000 live slots.
func BenchmarkCurrent(b *testing.B) {
	s := open(b, dbPath(b), bolt.Options{SweepInterval: -1})
	ctx := context.Background()
	const slots = 1000
	keys := make([]string, slots)
	errs := make([]error, slots)
	var wg sync.WaitGroup
	for i := range slots {
		keys[i] = fmt.Sprintf("k%d", i)
		wg.Go(func() {
			tok := token(time.Now(), "bench", keys[i], time.Hour)
			_, _, errs[i] = s.Issue(ctx, tok, currentOf(tok, 30*time.Minute))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatalf("Issue: %v", err)
	}
	var n atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Current(ctx, "bench", keys[n.Add(1)%slots]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestReissueSameHash: writing a token hash again replaces its row and its
// expiry index entry; the sweeper then follows the new expiry.
func TestReissueSameHash(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := open(t, dbPath(t), bolt.Options{Now: c.Now, SweepInterval: -1})
	tok := token(c.Now(), "c", "", time.Minute)
	issue(t, s, tok, nil)
	tok.ExpiresAt = tok.ExpiresAt.Add(time.Hour)
	issue(t, s, tok, nil)
	wantLens(t, s, map[string]int{bolt.BucketTokens: 1, bolt.BucketExpiry: 1, bolt.BucketByClient: 1})
	c.Advance(time.Minute)
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep = %d, %v; want 0", n, err)
	}
	if got, err := s.Token(ctx, tok.Hash); err != nil || !got.ExpiresAt.Equal(tok.ExpiresAt) {
		t.Fatalf("Token = %+v, %v; want the later expiry", got, err)
	}
}
