// Package bolt is tokengw's embedded store.Store, the default driver for a
// single node: one file, opened with go.etcd.io/bbolt, no server to run.
//
// It mirrors the Cassandra schema of DESIGN.md with buckets:
//
//	tokens          token hash (32 bytes)              -> token record
//	current         client_id 0x00 reuse_key           -> reuse row (one per slot)
//	clients         client_id                          -> client record
//	expiry          expires_at (8-byte BE ms) | hash   -> empty   (index of tokens)
//	by_client       client_id 0x00 expires_at | hash   -> empty   (index of tokens)
//	current_expiry  reuse_until (8-byte BE ms) | slot  -> empty   (index of reuse rows)
//	meta            "schema"                           -> layout version (2)
//
// Records are a compact binary encoding that starts with a version byte (see
// codec.go); times are kept to the millisecond, as store.go requires.
//
// Why it is built this way: bbolt has a single writer and every commit is an
// fsync, so writes (Issue, Revoke, ClearCurrents, client writes) go through
// DB.Batch, which folds concurrent writers into one transaction and one
// fsync; the claim of a reuse slot and the insert of its token share that
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
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
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

// Defaults for Options.
const (
	DefaultSweepInterval = time.Minute
	DefaultSweepChunk    = 1000
	DefaultTimeout       = time.Second
)

// schemaVersion is the bucket layout written in meta/schema. Version 1
// lacked by_client; Open upgrades such a file (migrateV1).
const (
	schemaVersion byte = 2
	schemaV1      byte = 1
)

// Bucket names, and meta's key.
const (
	bucketTokens        = "tokens"
	bucketCurrent       = "current"
	bucketClients       = "clients"
	bucketExpiry        = "expiry"
	bucketByClient      = "by_client"
	bucketCurrentExpiry = "current_expiry"
	bucketMeta          = "meta"
	keySchema           = "schema"
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
	// RevokeClient transaction revokes, and the tokens one transaction
	// indexes when Open upgrades a version-1 file.
	// 0 means DefaultSweepChunk (1000).
	SweepChunk int

	// OnSweep, if set, is called by the background sweeper after each run
	// with the number of rows deleted and the error, if any (for logs and
	// metrics). It runs on the sweeper goroutine and must not call Close.
	OnSweep func(deleted int, err error)

	// BatchDelay is the longest a write waits for others to share its
	// transaction and fsync (bbolt's DB.MaxBatchDelay). 0 means bbolt's
	// default (10ms).
	BatchDelay time.Duration

	// MaxBatchSize is the number of writes that commits a batch without
	// waiting for BatchDelay (bbolt's DB.MaxBatchSize). 0 means bbolt's
	// default (1000).
	MaxBatchSize int

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

	closed    atomic.Bool
	stopSweep context.CancelFunc // nil when the sweeper is disabled
	sweepDone chan struct{}      // closed when the sweeper has returned
}

// Open opens (creating if absent) the database file at path and starts the
// background sweeper. The file is created with mode 0600 and missing parent
// directories with 0700. When another process holds the file, Open fails
// with ErrLocked after opts.Timeout.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("bolt: open: empty path")
	}
	if opts.BatchDelay < 0 || opts.MaxBatchSize < 0 || opts.SweepChunk < 0 {
		return nil, errors.New("bolt: open: negative BatchDelay, MaxBatchSize or SweepChunk")
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
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		timeout = 0 // bbolt: wait forever
	}

	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bolt: open: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	if opts.BatchDelay > 0 {
		db.MaxBatchDelay = opts.BatchDelay
	}
	if opts.MaxBatchSize > 0 {
		db.MaxBatchSize = opts.MaxBatchSize
	}
	if err := initSchema(db, opts.SweepChunk); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}

	s := &Store{
		db:        db,
		now:       opts.Now,
		chunk:     opts.SweepChunk,
		onSweep:   opts.OnSweep,
		sweepDone: make(chan struct{}),
	}
	if opts.SweepInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopSweep = cancel
		go s.sweepLoop(ctx, opts.SweepInterval)
	} else {
		close(s.sweepDone)
	}
	return s, nil
}

// initSchema creates the buckets, checks the layout version and upgrades a
// version-1 file.
func initSchema(db *bbolt.DB, chunk int) error {
	var version byte
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, name := range []string{bucketTokens, bucketCurrent, bucketClients, bucketExpiry, bucketByClient, bucketCurrentExpiry, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		meta := tx.Bucket([]byte(bucketMeta))
		switch v := meta.Get([]byte(keySchema)); {
		case v == nil:
			if k, _ := tx.Bucket([]byte(bucketTokens)).Cursor().First(); k != nil {
				version = schemaV1 // tokens but no version: index them to be safe
				return nil
			}
			version = schemaVersion // a new file
			return meta.Put([]byte(keySchema), []byte{schemaVersion})
		case len(v) == 1 && (v[0] == schemaVersion || v[0] == schemaV1):
			version = v[0]
			return nil
		default:
			return fmt.Errorf("unsupported schema version %v (this build reads %d and upgrades %d)", v, schemaVersion, schemaV1)
		}
	})
	if err != nil || version == schemaVersion {
		return err
	}
	return migrateV1(db, chunk)
}

// migrateV1 upgrades a version-1 file: it adds a by_client entry for every
// token, at most chunk tokens per transaction, and then writes version 2.
// Open holds the file lock, so nothing else writes meanwhile; an upgrade cut
// short (a crash) leaves version 1 and is redone from the start at the next
// Open (the entries are idempotent puts). Tokens that do not decode get no
// entry: RevokeClient cannot revoke them, as Revoke cannot.
func migrateV1(db *bbolt.DB, chunk int) error {
	var after []byte // the last token key indexed
	for done := false; !done; {
		err := db.Update(func(tx *bbolt.Tx) error {
			tokens, byClient := tx.Bucket([]byte(bucketTokens)), tx.Bucket([]byte(bucketByClient))
			c := tokens.Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for n := 0; k != nil; k, v = c.Next() {
				if n == chunk {
					return nil
				}
				n++
				after = bytes.Clone(k)
				t, err := decodeToken(k, v)
				if err != nil || !validClientID(t.ClientID) {
					continue
				}
				if err := byClient.Put(byClientKey(t.ClientID, t.ExpiresAt, k), nil); err != nil {
					return err
				}
			}
			done = true
			return tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchema), []byte{schemaVersion})
		})
		if err != nil {
			return fmt.Errorf("upgrade schema %d to %d: %w", schemaV1, schemaVersion, err)
		}
	}
	return nil
}

// Close stops the sweeper, waits for it, and closes the file. Further calls
// on the Store return store.ErrClosed; closing twice is a no-op.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if s.stopSweep != nil {
		s.stopSweep()
	}
	<-s.sweepDone
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
	err := s.db.View(func(tx *bbolt.Tx) error {
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

// fail maps a bbolt error to the store's: a closed database is
// store.ErrClosed, a record this build cannot decode is a plain error, and
// anything else (I/O, disk full) is store.ErrUnavailable.
func (s *Store) fail(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrDatabaseNotOpen), errors.Is(err, store.ErrClosed):
		return fmt.Errorf("bolt: %s: %w", op, store.ErrClosed)
	case errors.Is(err, errCorrupt):
		return fmt.Errorf("bolt: %s: %w", op, err)
	default:
		return fmt.Errorf("bolt: %s: %w: %w", op, store.ErrUnavailable, err)
	}
}

// Issue implements store.Tokens. The slot claim and the token insert are one
// transaction, batched with concurrent writers.
func (s *Store) Issue(ctx context.Context, tok store.Token, cur *store.Current) (store.Current, bool, error) {
	if err := s.begin(ctx); err != nil {
		return store.Current{}, false, err
	}
	if len(tok.Hash) == 0 {
		return store.Current{}, false, errors.New("bolt: issue: empty token hash")
	}
	if !validClientID(tok.ClientID) {
		return store.Current{}, false, fmt.Errorf("bolt: issue: client id %q contains NUL", tok.ClientID)
	}
	var ck, cv []byte
	if cur != nil {
		if !bytes.Equal(cur.TokenHash, tok.Hash) {
			return store.Current{}, false, errors.New("bolt: issue: reuse row points at another token")
		}
		if !validClientID(cur.ClientID) {
			return store.Current{}, false, fmt.Errorf("bolt: issue: client id %q contains NUL", cur.ClientID)
		}
		ck, cv = slotKey(cur.ClientID, cur.ReuseKey), encodeCurrent(*cur)
	}
	hash, tv := bytes.Clone(tok.Hash), encodeToken(tok)

	// DB.Batch may run fn more than once (when another function in the
	// batch fails, the rest are retried): results are reset on every run.
	var (
		have    store.Current
		claimed bool
		ctxErr  error
	)
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		have, claimed, ctxErr = store.Current{}, false, nil
		if ctxErr = ctx.Err(); ctxErr != nil {
			return nil // write nothing; not an error, so the batch is not retried
		}
		if cur != nil {
			curs, idx := tx.Bucket([]byte(bucketCurrent)), tx.Bucket([]byte(bucketCurrentExpiry))
			if v := curs.Get(ck); v != nil {
				old, err := decodeCurrent(ck, v)
				if err != nil {
					return err
				}
				if s.now().Before(old.ReuseUntil) {
					have = old
					return nil
				}
				if err := idx.Delete(expiryKey(old.ReuseUntil, ck)); err != nil {
					return err
				}
			}
			if err := curs.Put(ck, cv); err != nil {
				return err
			}
			if err := idx.Put(expiryKey(cur.ReuseUntil, ck), nil); err != nil {
				return err
			}
			claimed = true
		}
		return putToken(tx, hash, tv, tok.ClientID, tok.ExpiresAt)
	})
	switch {
	case err != nil:
		return store.Current{}, false, s.fail("issue", err)
	case ctxErr != nil:
		return store.Current{}, false, ctxErr
	case claimed:
		c := *cur
		c.TokenHash, c.Sealed = bytes.Clone(c.TokenHash), bytes.Clone(c.Sealed)
		return c, true, nil
	default:
		return have, false, nil // have is zero when cur is nil
	}
}

// putToken writes a tokens row and its index entries (expiry, by_client),
// dropping the entries of a row it replaces.
func putToken(tx *bbolt.Tx, hash, v []byte, clientID string, expiresAt time.Time) error {
	tokens, idx, byClient := tx.Bucket([]byte(bucketTokens)), tx.Bucket([]byte(bucketExpiry)), tx.Bucket([]byte(bucketByClient))
	if old := tokens.Get(hash); old != nil {
		t, err := decodeToken(hash, old)
		if err != nil {
			return err
		}
		if err := idx.Delete(expiryKey(t.ExpiresAt, hash)); err != nil {
			return err
		}
		if err := byClient.Delete(byClientKey(t.ClientID, t.ExpiresAt, hash)); err != nil {
			return err
		}
	}
	if err := tokens.Put(hash, v); err != nil {
		return err
	}
	if err := idx.Put(expiryKey(expiresAt, hash), nil); err != nil {
		return err
	}
	return byClient.Put(byClientKey(clientID, expiresAt, hash), nil)
}

// Current implements store.Tokens.
func (s *Store) Current(ctx context.Context, clientID, reuseKey string) (store.Current, error) {
	if err := s.begin(ctx); err != nil {
		return store.Current{}, err
	}
	if !validClientID(clientID) {
		return store.Current{}, store.ErrNotFound
	}
	k := slotKey(clientID, reuseKey)
	var (
		c     store.Current
		found bool
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket([]byte(bucketCurrent)).Get(k)
		if v == nil {
			return nil
		}
		var err error
		c, err = decodeCurrent(k, v)
		found = err == nil
		return err
	})
	if err != nil {
		return store.Current{}, s.fail("current", err)
	}
	if !found || !s.now().Before(c.ReuseUntil) {
		return store.Current{}, store.ErrNotFound
	}
	return c, nil
}

// Token implements store.Tokens.
func (s *Store) Token(ctx context.Context, hash []byte) (store.Token, error) {
	if err := s.begin(ctx); err != nil {
		return store.Token{}, err
	}
	if len(hash) == 0 {
		return store.Token{}, store.ErrNotFound
	}
	var (
		t     store.Token
		found bool
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket([]byte(bucketTokens)).Get(hash)
		if v == nil {
			return nil
		}
		var err error
		t, err = decodeToken(hash, v)
		found = err == nil
		return err
	})
	if err != nil {
		return store.Token{}, s.fail("token", err)
	}
	if !found || !s.now().Before(t.ExpiresAt) {
		return store.Token{}, store.ErrNotFound
	}
	return t, nil
}

// Revoke implements store.Tokens. The token row stays, marked revoked, until
// it expires; the reuse row pointing at it is deleted.
func (s *Store) Revoke(ctx context.Context, hash []byte) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if len(hash) == 0 {
		return store.ErrNotFound
	}
	hash = bytes.Clone(hash)
	var notFound bool
	var ctxErr error
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		notFound, ctxErr = false, nil
		if ctxErr = ctx.Err(); ctxErr != nil {
			return nil
		}
		tokens := tx.Bucket([]byte(bucketTokens))
		v := tokens.Get(hash)
		if v == nil {
			notFound = true
			return nil
		}
		t, err := decodeToken(hash, v)
		if err != nil {
			return err
		}
		if !s.now().Before(t.ExpiresAt) {
			notFound = true
			return nil
		}
		if !t.Revoked {
			t.Revoked = true // same expiry: the index entry stays valid
			if err := tokens.Put(hash, encodeToken(t)); err != nil {
				return err
			}
		}
		if !validClientID(t.ClientID) {
			return nil
		}
		k := slotKey(t.ClientID, t.ReuseKey)
		curs := tx.Bucket([]byte(bucketCurrent))
		cv := curs.Get(k)
		if cv == nil {
			return nil
		}
		c, err := decodeCurrent(k, cv)
		if err != nil {
			return err
		}
		if !bytes.Equal(c.TokenHash, hash) {
			return nil
		}
		return deleteCurrent(tx, k, c.ReuseUntil)
	})
	switch {
	case err != nil:
		return s.fail("revoke", err)
	case ctxErr != nil:
		return ctxErr
	case notFound:
		return store.ErrNotFound
	}
	return nil
}

// deleteCurrent deletes a reuse row and its index entry.
func deleteCurrent(tx *bbolt.Tx, k []byte, reuseUntil time.Time) error {
	if err := tx.Bucket([]byte(bucketCurrent)).Delete(k); err != nil {
		return err
	}
	return tx.Bucket([]byte(bucketCurrentExpiry)).Delete(expiryKey(reuseUntil, k))
}

// clearCurrents deletes every reuse row of a client.
func clearCurrents(tx *bbolt.Tx, clientID string) error {
	prefix := slotKey(clientID, "")
	curs := tx.Bucket([]byte(bucketCurrent))
	type row struct {
		k     []byte
		until time.Time
		ok    bool // decoded: the index entry can be found
	}
	var rows []row
	c := curs.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		cur, err := decodeCurrent(k, v)
		rows = append(rows, row{k: bytes.Clone(k), until: cur.ReuseUntil, ok: err == nil})
	}
	for _, r := range rows {
		if !r.ok { // undecodable: drop the row; the sweeper drops the stale index entry
			if err := curs.Delete(r.k); err != nil {
				return err
			}
			continue
		}
		if err := deleteCurrent(tx, r.k, r.until); err != nil {
			return err
		}
	}
	return nil
}

// ClearCurrents implements store.Tokens.
func (s *Store) ClearCurrents(ctx context.Context, clientID string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if !validClientID(clientID) {
		return nil // no slot can belong to it
	}
	var ctxErr error
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		if ctxErr = ctx.Err(); ctxErr != nil {
			return nil
		}
		return clearCurrents(tx, clientID)
	})
	if err != nil {
		return s.fail("clear currents", err)
	}
	return ctxErr
}

// RevokeClient implements store.Tokens. It walks the client's by_client
// entries from now on (expiry order) and revokes at most SweepChunk tokens
// per write transaction; every transaction also deletes the client's reuse
// rows, so no committed state has a reuse row pointing at a token revoked
// here. A token row that does not decode is deleted (an unknown token is as
// inactive as a revoked one), and is counted; entries that point at no
// token, or at a token row rewritten since, are dropped.
func (s *Store) RevokeClient(ctx context.Context, clientID string) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	if !validClientID(clientID) {
		return 0, nil // Issue refuses such ids: no token can belong to it
	}
	prefix := append([]byte(clientID), 0)
	// Live: now < expires_at, in milliseconds: expires_ms >= now_ms+1.
	now := s.now()
	seek := byClientKey(clientID, time.UnixMilli(now.UnixMilli()+1), nil)
	total := 0
	for first := true; ; first = false {
		if !first { // the first check was above
			if err := s.begin(ctx); err != nil {
				return total, err
			}
		}
		var (
			n    int
			next []byte
		)
		err := s.db.Update(func(tx *bbolt.Tx) error {
			var err error
			n, next, err = s.revokeChunk(tx, clientID, prefix, seek, now)
			if err != nil {
				return err
			}
			return clearCurrents(tx, clientID)
		})
		if err != nil {
			return total, s.fail("revoke client", err)
		}
		total += n
		if next == nil {
			return total, nil
		}
		seek = next
	}
}

// revokeChunk revokes up to s.chunk of the tokens whose by_client entries
// start at seek (within prefix). next is where the next chunk starts, nil
// when the client's entries are exhausted.
func (s *Store) revokeChunk(tx *bbolt.Tx, clientID string, prefix, seek []byte, now time.Time) (n int, next []byte, err error) {
	tokens, byClient := tx.Bucket([]byte(bucketTokens)), tx.Bucket([]byte(bucketByClient))
	type entry struct {
		key  []byte
		hash []byte
		exp  uint64
	}
	var entries []entry
	c := byClient.Cursor()
	for k, _ := c.Seek(seek); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(entries) == s.chunk {
			next = bytes.Clone(k)
			break
		}
		rest := k[len(prefix):]
		if len(rest) < 8 {
			entries = append(entries, entry{key: bytes.Clone(k)}) // malformed: dropped
			continue
		}
		entries = append(entries, entry{key: bytes.Clone(k), hash: bytes.Clone(rest[8:]), exp: binary.BigEndian.Uint64(rest)})
	}
	for _, e := range entries {
		var v []byte
		if len(e.hash) > 0 {
			v = tokens.Get(e.hash)
		}
		if v == nil { // nothing to revoke: drop the stale entry
			if err := byClient.Delete(e.key); err != nil {
				return 0, nil, err
			}
			continue
		}
		t, derr := decodeToken(e.hash, v)
		if derr != nil {
			// Undecodable: delete the row, which makes the token unknown
			// (inactive); the sweeper drops its expiry entry.
			if err := tokens.Delete(e.hash); err != nil {
				return 0, nil, err
			}
			if err := byClient.Delete(e.key); err != nil {
				return 0, nil, err
			}
			n++
			continue
		}
		if t.ClientID != clientID || indexMilli(t.ExpiresAt.UnixMilli()) != e.exp {
			// Left over from a row rewritten since (it has its own entry).
			if err := byClient.Delete(e.key); err != nil {
				return 0, nil, err
			}
			continue
		}
		if t.Revoked || !now.Before(t.ExpiresAt) {
			continue
		}
		t.Revoked = true // same expiry: both index entries stay valid
		if err := tokens.Put(e.hash, encodeToken(t)); err != nil {
			return 0, nil, err
		}
		n++
	}
	return n, next, nil
}

// Client implements store.Clients.
func (s *Store) Client(ctx context.Context, id string) (store.Client, error) {
	if err := s.begin(ctx); err != nil {
		return store.Client{}, err
	}
	if id == "" {
		return store.Client{}, store.ErrNotFound
	}
	var (
		c     store.Client
		found bool
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket([]byte(bucketClients)).Get([]byte(id))
		if v == nil {
			return nil
		}
		var err error
		c, err = decodeClient([]byte(id), v)
		found = err == nil
		return err
	})
	if err != nil {
		return store.Client{}, s.fail("client", err)
	}
	if !found {
		return store.Client{}, store.ErrNotFound
	}
	return c, nil
}

// Clients implements store.Clients: every client, ordered by id (bbolt keeps
// keys in byte order).
func (s *Store) Clients(ctx context.Context) ([]store.Client, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	var out []store.Client
	err := s.db.View(func(tx *bbolt.Tx) error {
		out = []store.Client{}
		return tx.Bucket([]byte(bucketClients)).ForEach(func(k, v []byte) error {
			c, err := decodeClient(k, v)
			if err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, s.fail("clients", err)
	}
	return out, nil
}

// CreateClient implements store.Clients.
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	return s.putClient(ctx, c, false)
}

// UpdateClient implements store.Clients.
func (s *Store) UpdateClient(ctx context.Context, c store.Client) error {
	return s.putClient(ctx, c, true)
}

func (s *Store) putClient(ctx context.Context, c store.Client, update bool) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if c.ID == "" {
		if update {
			return store.ErrNotFound
		}
		return errors.New("bolt: create client: empty client id")
	}
	k, v := []byte(c.ID), encodeClient(c)
	var result error // ctx error, ErrExists or ErrNotFound: not batch failures
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		if result = ctx.Err(); result != nil {
			return nil
		}
		b := tx.Bucket([]byte(bucketClients))
		exists := b.Get(k) != nil
		switch {
		case update && !exists:
			result = store.ErrNotFound
			return nil
		case !update && exists:
			result = store.ErrExists
			return nil
		}
		return b.Put(k, v)
	})
	if err != nil {
		op := "create client"
		if update {
			op = "update client"
		}
		return s.fail(op, err)
	}
	return result
}

// DeleteClient implements store.Clients: the client and its reuse rows go in
// one transaction.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if id == "" {
		return store.ErrNotFound
	}
	k := []byte(id)
	var result error
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		if result = ctx.Err(); result != nil {
			return nil
		}
		b := tx.Bucket([]byte(bucketClients))
		if b.Get(k) == nil {
			result = store.ErrNotFound
			return nil
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		if !validClientID(id) {
			return nil
		}
		return clearCurrents(tx, id)
	})
	if err != nil {
		return s.fail("delete client", err)
	}
	return result
}

// TokenCount reports how many unexpired tokens (revoked or not) the store
// holds, by the injected clock. For tests and operators; it walks the
// expiry index from now on.
func (s *Store) TokenCount(ctx context.Context) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	// Unexpired: now < expires_at, in milliseconds: expires_ms >= now_ms+1.
	from := expiryKey(time.UnixMilli(s.now().UnixMilli()+1), nil)
	n := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(bucketExpiry)).Cursor()
		for k, _ := c.Seek(from); k != nil; k, _ = c.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, s.fail("token count", err)
	}
	return n, nil
}
