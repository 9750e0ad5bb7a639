package bolt

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// Bucket names for the tests in package bolt_test.
const (
	BucketTokens        = bucketTokens
	BucketCurrent       = bucketCurrent
	BucketClients       = bucketClients
	BucketExpiry        = bucketExpiry
	BucketByClient      = bucketByClient
	BucketCurrentExpiry = bucketCurrentExpiry
	BucketMeta          = bucketMeta
	KeySchema           = keySchema

	BucketUpstream       = bucketUpstream
	BucketUpstreamExpiry = bucketUpstreamExpiry
)

// SweeperDone is closed when the background sweeper has returned.
func SweeperDone(s *Store) <-chan struct{} { return s.sweepDone }

// BucketLen counts the keys of a bucket.
func BucketLen(t testing.TB, s *Store, bucket string) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bucket)).ForEach(func(_, _ []byte) error { n++; return nil })
	})
	if err != nil {
		t.Fatalf("BucketLen(%s): %v", bucket, err)
	}
	return n
}

// PutRaw writes a raw value, bypassing the encoding (to plant corrupt rows).
func PutRaw(t testing.TB, s *Store, bucket string, key, value []byte) {
	t.Helper()
	err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte(bucket)).Put(key, value) })
	if err != nil {
		t.Fatalf("PutRaw(%s): %v", bucket, err)
	}
}

// SlotKey is the current bucket's key of a slot.
func SlotKey(clientID, reuseKey string) []byte { return slotKey(clientID, reuseKey) }

// ByClientKey is the by_client bucket's key of a token.
func ByClientKey(clientID string, expiresAt time.Time, hash []byte) []byte {
	return byClientKey(clientID, expiresAt, hash)
}

// MakeV1 turns the closed database file at path into the version-1 layout
// (the same buckets and records, without by_client).
func MakeV1(t testing.TB, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatalf("MakeV1: %v", err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket([]byte(bucketByClient)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchema), []byte{schemaV1})
	})
	if err != nil {
		t.Fatalf("MakeV1: %v", err)
	}
}

// SchemaOf reads the layout version of the closed database file at path.
func SchemaOf(t testing.TB, path string) []byte {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("SchemaOf: %v", err)
	}
	defer db.Close()
	var v []byte
	_ = db.View(func(tx *bbolt.Tx) error {
		v = bytes.Clone(tx.Bucket([]byte(bucketMeta)).Get([]byte(keySchema)))
		return nil
	})
	return v
}

// UseDBBatch makes s write through bbolt's DB.Batch (a timer of
// DB.MaxBatchDelay, 10ms, or DB.MaxBatchSize writes, then one transaction)
// instead of the group committer: the path before group commit, kept here
// to measure against. Call it before s is used.
func UseDBBatch(s *Store) { s.write = s.db.Batch }

// HoldCommitter makes the committer stop before its next batch until the
// returned release is called; taken receives the size of every batch the
// committer takes, and queued the queue's length after every write joins
// it. Both channels are buffered; a send that would block is dropped.
func HoldCommitter(s *Store) (taken, queued <-chan int, release func()) {
	c := s.commits
	t, q := make(chan int, 1024), make(chan int, 1024)
	gate := make(chan struct{})
	var once sync.Once
	first := true
	c.mu.Lock()
	c.take = func(n int) {
		select {
		case t <- n:
		default:
		}
		if first {
			first = false
			<-gate
		}
	}
	c.queued = func(n int) {
		select {
		case q <- n:
		default:
		}
	}
	c.mu.Unlock()
	return t, q, func() { once.Do(func() { close(gate) }) }
}

// WritePanic queues a write that panics with p.
func WritePanic(s *Store, p any) error {
	return s.write(func(*bbolt.Tx) error { panic(p) })
}

// LeafPages lists the leaf pages in use in the closed database file at
// path (not free: damage to them is damage to data).
func LeafPages(t testing.TB, path string) []int { return pagesOf(t, path, "leaf") }

// FreelistPages lists the pages holding the free list of the closed
// database file at path.
func FreelistPages(t testing.TB, path string) []int { return pagesOf(t, path, "freelist") }

func pagesOf(t testing.TB, path, typ string) []int {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil) // read-write: the free list is loaded
	if err != nil {
		t.Fatalf("pagesOf: %v", err)
	}
	defer db.Close()
	var ids []int
	err = db.View(func(tx *bbolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return err
			}
			if p.Type == typ {
				ids = append(ids, id)
			}
		}
	})
	if err != nil {
		t.Fatalf("pagesOf: %v", err)
	}
	return ids
}
