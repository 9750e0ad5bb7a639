// Package bolt is tokengw's embedded store.Store, the default driver for a
// single node: one file, opened with go.etcd.io/bbolt, no server to run.
//
// It mirrors the Cassandra schema of docs/cassandra.md with buckets:
//
//	tokens          token hash (32 bytes)              -> token record
//	current         client_id 0x00 reuse_key           -> reuse row (one per slot)
//	clients         client_id                          -> client record
//	expiry          expires_at (8-byte BE ms) | hash   -> empty   (index of tokens)
//	by_client       client_id 0x00 expires_at | hash   -> empty   (index of tokens)
//	current_expiry  reuse_until (8-byte BE ms) | slot  -> empty   (index of reuse rows)
//	meta            "schema"                           -> layout version (2)
//
// and, made on first use: signing_keys (the JWT key ring, keys.go),
// assertions and assertions_expiry (one-time jti claims, assertions.go),
// upstream and upstream_expiry (upstream mode's cached responses, index
// rows and leases, upstream.go).
//
// Records are a compact binary encoding that starts with a version byte (see
// codec.go); times are kept to the millisecond, as store.go requires.
//
// Why it is built this way: bbolt has a single writer and every commit is an
// fsync, so writes (Issue, Revoke, ClearCurrents, RevokeClient, client
// writes) go through a group committer (commit.go), which folds every write
// queued meanwhile into one transaction and one fsync, without a timer; the
// claim of a reuse slot and the insert of its token share that
// transaction, so Issue is exclusive per slot. A token's two index entries
// (expiry, by_client) are written in the transaction that writes the token
// and deleted in the one that deletes it, so RevokeClient finds a client's
// live tokens by a range scan of by_client instead of a walk over every
// token. bbolt has no TTL, so expiry is enforced on read against the
// injected clock, exactly as the memory driver does, and a background
// sweeper deletes expired rows by walking the expiry indexes from the
// oldest entry, in bounded chunks so that it never holds the write lock for
// long. The file lock makes a second process on the same file
// fail at Open (ErrLocked) instead of corrupting it.
//
// Layout versions: 1 had no by_client bucket. Open upgrades a version-1
// file in place (it builds by_client from the tokens, in chunks, and then
// writes version 2) and refuses any version it does not know; a version-2
// file is refused by a version-1 build, which would write tokens without
// by_client entries, so that RevokeClient would miss them.
//
// Files, by concept: bolt.go opens and closes the file, schema.go holds the
// bucket layout and its upgrade, tokens.go the tokens and reuse rows
// (issue, current, revoke), clients.go the client registry, upstream.go
// upstream mode's rows, commit.go the group committer, sweep.go the expiry
// sweeper and codec.go the record encoding.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Store = (*Store)(nil)

// ErrLocked is returned by Open when another process (or another Store in
// this one) holds the database file.
var ErrLocked = errors.New("bolt: database file is locked by another process")

// ErrCorrupt is returned (wrapped, with the file's name) by Open, Check and
// any operation that finds the database file damaged: pages that do not
// hold what bbolt expects. It is not transient: restore the file from a
// backup (see the README).
var ErrCorrupt = errors.New("bolt: database file is damaged")

// Defaults for Options.
const (
	DefaultSweepInterval = time.Minute
	DefaultSweepChunk    = 1000
	DefaultTimeout       = time.Second
)

// Options configures a Store. The zero value is a production default.
type Options struct {
	// Now is the clock expiry is judged by; default time.Now.
	Now func() time.Time

	// SweepInterval is how often the background sweeper deletes expired
	// tokens and reuse rows. 0 means DefaultSweepInterval (1m); negative
	// disables the sweeper (tests call Sweep themselves).
	SweepInterval time.Duration

	// SweepChunk bounds how many index entries one sweep transaction
	// deletes, so the sweeper never holds the write lock for long. It
	// bounds the other long-running writes the same way: the tokens one
	// RevokeClient write revokes, and the tokens one transaction indexes
	// when Open upgrades a version-1 file.
	// 0 means DefaultSweepChunk (1000).
	SweepChunk int

	// OnSweep, if set, is called by the background sweeper after each run
	// with the number of rows deleted and the error, if any (for logs and
	// metrics). It runs on the sweeper goroutine and must not call Close.
	OnSweep func(deleted int, err error)

	// Timeout is how long Open waits for the file lock before it fails with
	// ErrLocked. 0 means DefaultTimeout (1s); negative waits forever.
	Timeout time.Duration
}

// Store is the bbolt-backed store.Store. It is safe for concurrent use.
// Create it with Open and release it with Close.
type Store struct {
	db      *bbolt.DB
	now     func() time.Time
	chunk   int
	onSweep func(int, error)

	// commits is the group committer every write goes through, by way
	// of write (commits.do; the tests can put bbolt's DB.Batch there to
	// measure against it).
	commits *committer
	write   func(func(*bbolt.Tx) error) error

	closed    atomic.Bool
	stopSweep context.CancelFunc // nil when the sweeper is disabled
	sweepDone chan struct{}      // closed when the sweeper has returned

	// epoch tells this Open's upstream leases from those of a process
	// that held the file before (upstream.go).
	epoch uint64
}

// Open opens (creating if absent) the database file at path and starts the
// background sweeper. The file is created with mode 0600 and missing parent
// directories with 0700. When another process holds the file, Open fails
// with ErrLocked after opts.Timeout. A damaged file (cut short, pages bbolt
// cannot read) fails with an error wrapping ErrCorrupt that names it, never
// a panic; see check.go.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("bolt: open: empty path")
	}
	if opts.SweepChunk < 0 {
		return nil, errors.New("bolt: open: negative SweepChunk")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	if opts.SweepChunk == 0 {
		opts.SweepChunk = DefaultSweepChunk
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bolt: open: %w", err)
	}
	if err := probe(path, opts.Timeout); err != nil {
		return nil, err
	}
	db, err := openBolt(path, &bbolt.Options{Timeout: lockTimeout(opts.Timeout)})
	if err != nil {
		return nil, err
	}
	if err := setUp(db, path, opts.SweepChunk); err != nil {
		return nil, err
	}

	s := &Store{
		db:        db,
		now:       opts.Now,
		chunk:     opts.SweepChunk,
		onSweep:   opts.OnSweep,
		sweepDone: make(chan struct{}),
		commits:   newCommitter(db),
		epoch:     newEpoch(),
	}
	s.write = s.commits.do
	if opts.SweepInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopSweep = cancel
		go s.sweepLoop(ctx, opts.SweepInterval)
	} else {
		close(s.sweepDone)
	}
	return s, nil
}

// Close stops the sweeper, waits for it, commits the writes already
// queued, and closes the file. Further calls on the Store return
// store.ErrClosed; closing twice is a no-op.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if s.stopSweep != nil {
		s.stopSweep()
	}
	<-s.sweepDone
	s.commits.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("bolt: close: %w", err)
	}
	return nil
}

// Ping implements store.Store: nil while the file is open and readable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	err := s.view(func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte(bucketTokens)) == nil {
			return errors.New("tokens bucket missing")
		}
		return nil
	})
	return s.fail("ping", err)
}

// begin is the check every operation starts with.
func (s *Store) begin(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// view runs fn in a read transaction. A panic or memory fault on a
// damaged page is returned as an error wrapping ErrCorrupt instead of
// taking the caller's goroutine down.
func (s *Store) view(fn func(*bbolt.Tx) error) error {
	return protect(s.db.Path(), func() error { return s.db.View(fn) })
}

// fail maps a bbolt error to the store's: a closed database is
// store.ErrClosed, a record this build cannot decode is a plain error, and
// anything else (I/O, disk full) is store.ErrUnavailable.
func (s *Store) fail(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrDatabaseNotOpen), errors.Is(err, store.ErrClosed):
		return fmt.Errorf("bolt: %s: %w", op, store.ErrClosed)
	case errors.Is(err, errCorrupt), errors.Is(err, ErrCorrupt):
		return fmt.Errorf("bolt: %s: %w", op, err)
	default:
		return fmt.Errorf("bolt: %s: %w: %w", op, store.ErrUnavailable, err)
	}
}
