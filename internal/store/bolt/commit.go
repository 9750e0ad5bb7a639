package bolt

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"go.etcd.io/bbolt"

	"github.com/tokengw/tokengw/internal/store"
)

// Group commit.
//
// bbolt has one writer and every commit ends in an fsync, which costs far
// more than the writes of one token. So writes are not committed one by
// one: a write joins a queue and waits; one committer goroutine takes
// everything queued, runs it in ONE read-write transaction, commits it
// (fsync included), answers every waiter and goes straight back to the
// queue. There is no timer: while one transaction is being synced the next
// batch gathers, so a batch is as large as the queue was when the
// committer came back to it, and a lone writer is committed at once. An
// answer means the transaction holding the write is on disk.
//
// A write is a function of the transaction that may run more than once: a
// write that fails (returns an error or panics) must not fail the others
// sharing its transaction, so the committer rolls the transaction back,
// takes the failing write out and runs the rest again as one transaction;
// the failing write is then run alone, in a transaction of its own, by its
// caller, and its caller gets that run's result. A failure of the commit
// itself (disk full, I/O error) is every write's answer: none of them is on
// disk.

// errSolo tells a waiter that its write failed inside a shared transaction
// and is to be run alone.
var errSolo = errors.New("bolt: run the write alone")

// writeOp is one queued write.
type writeOp struct {
	fn   func(*bbolt.Tx) error
	done chan error // buffered (1): the committer never blocks on it
}

// committer owns the queue and the goroutine that commits it.
type committer struct {
	db *bbolt.DB

	mu      sync.Mutex
	wake    sync.Cond // signalled when the queue grows or closing is set
	queue   []*writeOp
	closing bool
	done    chan struct{} // closed when the committer goroutine has returned

	// Fault hooks for tests (export_test.go), set and read under mu; nil
	// in production. queued runs, with the queue length, after a write
	// joins the queue; take runs on the committer goroutine, with the
	// batch size, before a batch is committed, and may block it.
	queued func(n int)
	take   func(n int)
}

// newCommitter starts the committer goroutine of db.
func newCommitter(db *bbolt.DB) *committer {
	c := &committer{db: db, done: make(chan struct{})}
	c.wake.L = &c.mu
	go c.run()
	return c
}

// do queues fn, waits for the transaction holding it to be committed and
// returns fn's error or the commit's. After close it returns
// store.ErrClosed without running fn.
func (c *committer) do(fn func(*bbolt.Tx) error) error {
	op := &writeOp{fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return store.ErrClosed
	}
	c.queue = append(c.queue, op)
	if c.queued != nil {
		c.queued(len(c.queue))
	}
	c.mu.Unlock()
	c.wake.Signal()

	err := <-op.done
	if errors.Is(err, errSolo) {
		err = safeUpdate(c.db, fn)
	}
	return err
}

// close lets the committer commit what is queued, stops it and waits for
// it. Writes queued after close begins get store.ErrClosed.
func (c *committer) close() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.wake.Broadcast()
	<-c.done
}

// run is the committer goroutine.
func (c *committer) run() {
	defer close(c.done)
	debug.SetPanicOnFault(true) // a fault on a damaged page fails a write, see safeCall
	var batch []*writeOp        // the queue's previous backing array, reused
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closing {
			c.wake.Wait()
		}
		if len(c.queue) == 0 { // closing, and nothing left to commit
			c.mu.Unlock()
			return
		}
		batch, c.queue = c.queue, batch[:0]
		take := c.take
		c.mu.Unlock()

		if take != nil {
			take(len(batch))
		}
		c.commit(batch)
		clear(batch) // drop the references to answered writes
	}
}

// commit runs batch in one transaction and answers every write in it.
// batch's order is not kept: a failing write is swapped out from the end.
func (c *committer) commit(batch []*writeOp) {
	for len(batch) > 0 {
		failed := -1
		err := safeUpdate(c.db, func(tx *bbolt.Tx) error {
			for i, op := range batch {
				if err := safeCall(op.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, op := range batch {
				op.done <- err // nil, or the commit's failure
			}
			return
		}
		batch[failed].done <- errSolo
		last := len(batch) - 1
		batch[failed] = batch[last]
		batch = batch[:last]
	}
}

// safeCall runs one write, turning a panic (bbolt panics on some damaged
// pages) into an error wrapping ErrCorrupt, so that one bad write does not
// take the committer, and the process, down with it.
func safeCall(fn func(*bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: a write panicked: %v", ErrCorrupt, p)
		}
	}()
	return fn(tx)
}

// safeUpdate is db.Update with fn run by safeCall and a panic of the commit
// itself turned into an error wrapping ErrCorrupt as well.
func safeUpdate(db *bbolt.DB, fn func(*bbolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: a commit panicked: %v", ErrCorrupt, p)
		}
	}()
	return db.Update(func(tx *bbolt.Tx) error { return safeCall(fn, tx) })
}
