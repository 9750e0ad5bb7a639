package bolt

import (
	"testing"

	"go.etcd.io/bbolt"
)

// Bucket names for the tests in package bolt_test.
const (
	BucketTokens        = bucketTokens
	BucketCurrent       = bucketCurrent
	BucketClients       = bucketClients
	BucketExpiry        = bucketExpiry
	BucketCurrentExpiry = bucketCurrentExpiry
	BucketMeta          = bucketMeta
	KeySchema           = keySchema
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
