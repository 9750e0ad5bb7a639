package bolt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Damaged files, consistency checks and backups.
//
// bbolt trusts its file: a page that does not hold what it expects makes it
// panic ("invalid freelist page", slice bounds), and a page past the end of
// a file that was cut short is a memory fault in the mapping, which Go
// cannot recover from unless the goroutine asked for it
// (debug.SetPanicOnFault). So a file is probed before it is opened for
// writing: opened read-only, and its size compared with the end of the
// pages its meta page counts. The write open and the schema set-up then run
// with faults turned into panics and panics into errors. Either way the
// answer is an error wrapping ErrCorrupt that names the file and says what
// to do, never a crash.

// damaged is the ErrCorrupt error for path, with what was wrong and what to
// do about it.
func damaged(path, what string) error {
	return fmt.Errorf("%w: %s: %s; restore the file from a backup, or move it aside to start with an empty store "+
		"(README: Backup and restore of the embedded store)", ErrCorrupt, path, what)
}

// protect runs fn, returning a panic or memory fault on a damaged page of
// the file at path as an error wrapping ErrCorrupt.
func protect(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %s: reading it failed: %v", ErrCorrupt, path, p)
		}
	}()
	return fn()
}

// lockTimeout turns an Options.Timeout into bbolt's (0 waits forever).
func lockTimeout(t time.Duration) time.Duration {
	switch {
	case t == 0:
		return DefaultTimeout
	case t < 0:
		return 0
	}
	return t
}

// openBolt is bbolt.Open with its errors sorted: a lock not obtained within
// timeout is ErrLocked, a file bbolt cannot read (bad magic, checksum,
// version, too small) or that makes it panic or fault is ErrCorrupt, an
// error of the file system is itself. bbolt does not return the DB of an
// open that panics: its file is unlocked and closed here, its memory
// mapping is left until the process ends, as it is expected to on
// ErrCorrupt.
func openBolt(path string, opts *bbolt.Options) (db *bbolt.DB, err error) {
	var file *os.File
	opts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if file != nil {
				unlockFile(file)
				_ = file.Close()
			}
			db, err = nil, damaged(path, fmt.Sprintf("reading it failed: %v", p))
		}
	}()
	db, err = bbolt.Open(path, 0o600, opts)
	var pathErr *fs.PathError
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, opts.Timeout)
	case errors.As(err, &pathErr):
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	default:
		return nil, damaged(path, err.Error())
	}
}

// openReadOnly opens an existing file read-only (a shared lock: it waits
// for a writer to let go, and keeps writers out while it is open) and
// checks that no page is missing from its end.
func openReadOnly(path string, timeout time.Duration) (*bbolt.DB, error) {
	db, err := openBolt(path, &bbolt.Options{ReadOnly: true, Timeout: lockTimeout(timeout)})
	if err != nil {
		return nil, err
	}
	if err := checkSize(db, path); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// checkSize compares the file's size with the end of the pages its current
// meta page counts: a file cut short (a copy that ran out of disk, a
// truncation) would be read past its end.
func checkSize(db *bbolt.DB, path string) error {
	var need int64
	if err := db.View(func(tx *bbolt.Tx) error { need = tx.Size(); return nil }); err != nil {
		return fmt.Errorf("bolt: open %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("bolt: open %s: %w", path, err)
	}
	if fi.Size() < need {
		return damaged(path, fmt.Sprintf("the file is %d bytes but its pages end at byte %d: it was cut short", fi.Size(), need))
	}
	return nil
}

// probe checks an existing, non-empty file before Open opens it for
// writing. A missing or empty file is a new store (bbolt initialises it).
func probe(path string, timeout time.Duration) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bolt: open %s: %w", path, err)
	}
	db, err := openReadOnly(path, timeout)
	if err != nil {
		return err
	}
	return db.Close()
}

// checkTx runs the store's check (every bucket present) and bbolt's
// consistency check (every page reachable exactly once or free, every
// bucket's keys in order) in tx, and releases tx (release) once bbolt's
// check is done with it. bbolt's check cannot be stopped once started, so
// ctx is only looked at before it starts; after maxProblems problems it is
// left to finish on its own goroutine (it reports the same damage again and
// again down a damaged tree) and tx is released when it has.
func checkTx(ctx context.Context, tx *bbolt.Tx, path string, release func()) error {
	if err := ctx.Err(); err != nil {
		release()
		return err
	}
	const shown, maxProblems = 10, 1000
	var problems []error
	n := 0
	add := func(err error) {
		if n++; n <= shown {
			problems = append(problems, err)
		}
	}
	if err := protect(path, func() error {
		for _, name := range bucketNames() {
			if tx.Bucket([]byte(name)) == nil {
				add(fmt.Errorf("bucket %s missing", name))
			}
		}
		return nil
	}); err != nil {
		add(err)
	}
	ch := tx.Check()
	for err := range ch {
		if add(err); n == maxProblems {
			go func() {
				for range ch {
				}
				release()
			}()
			return damaged(path, fmt.Sprintf("the consistency check found %d problems and stopped there: %v", n, errors.Join(problems...)))
		}
	}
	release()
	if n == 0 {
		return nil
	}
	return damaged(path, fmt.Sprintf("the consistency check found %d problem(s): %v", n, errors.Join(problems...)))
}

// Check runs bbolt's consistency check over the whole file and checks that
// every bucket of the layout is there; a problem is an error wrapping
// ErrCorrupt. It runs in a write transaction (bbolt's check reads the free
// list, which writers change), so writes wait until it is done: it takes
// about as long as reading the file.
func (s *Store) Check(ctx context.Context) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return s.fail("check", err)
	}
	return checkTx(ctx, tx, s.db.Path(), func() { _ = tx.Rollback() })
}

// CheckFile checks the database file at path as Check does, without a
// Store: it opens the file read-only, so it never changes it and does not
// create it, and fails with ErrLocked after timeout (0: DefaultTimeout,
// negative: forever) while a Store holds it.
func CheckFile(ctx context.Context, path string, timeout time.Duration) error {
	db, err := openReadOnly(path, timeout)
	if err != nil {
		return err
	}
	tx, err := db.Begin(false)
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("bolt: check %s: %w", path, err)
	}
	return checkTx(ctx, tx, path, func() {
		_ = tx.Rollback()
		_ = db.Close()
	})
}

// ctxWriter fails writes once ctx is done, which stops a copy.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// writeCopy writes a consistent copy of the file as of tx to w (bbolt's
// Tx.WriteTo: the pages of tx's snapshot, whatever writers do meanwhile),
// telling size, if set, how many bytes follow before the first one.
func writeCopy(ctx context.Context, tx *bbolt.Tx, w io.Writer, size func(int64)) (int64, error) {
	if size != nil {
		size(tx.Size())
	}
	n, err := tx.WriteTo(ctxWriter{ctx, w})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return n, fmt.Errorf("bolt: backup: %w", cerr)
		}
		return n, fmt.Errorf("bolt: backup: %w", err)
	}
	return n, nil
}

// Backup writes a consistent copy of the database file to w while the
// store serves, and returns its length. The copy is a snapshot: it holds
// every write acknowledged before Backup was called, and is itself a
// database file (open it, check it with CheckFile, or put it in place of
// the store's file to restore). Writers are not blocked, except one that
// must grow the file while the copy runs, which waits for it to end.
// Ending ctx stops the copy.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return s.backup(ctx, w, nil)
}

func (s *Store) backup(ctx context.Context, w io.Writer, size func(int64)) (int64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		n, err = writeCopy(ctx, tx, w, size)
		return err
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return n, s.fail("backup", err)
	}
	return n, err
}

// BackupFile writes a consistent copy of the database file at path to w,
// without a Store, as Backup does: it opens the file read-only (see
// CheckFile for timeout and ErrLocked).
func BackupFile(ctx context.Context, path string, w io.Writer, timeout time.Duration) (int64, error) {
	db, err := openReadOnly(path, timeout)
	if err != nil {
		return 0, err
	}
	defer func() { _ = db.Close() }()
	var n int64
	err = protect(path, func() error {
		return db.View(func(tx *bbolt.Tx) error {
			var err error
			n, err = writeCopy(ctx, tx, w, nil)
			return err
		})
	})
	return n, err
}
