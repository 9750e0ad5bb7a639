package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Assertions = (*Store)(nil)

// Buckets of the claimed assertion identifiers, created by the first claim:
//
//	assertions         scope 0x00 jti hash                -> expiry (8-byte BE unix ms)
//	assertions_expiry  expiry (8-byte BE ms) | row key    -> empty   (index for pruning)
const (
	bucketAssertions       = "assertions"
	bucketAssertionsExpiry = "assertions_expiry"
	// assertionPrune bounds how many expired records one claim deletes,
	// oldest first: every claim removes more than it adds while expired
	// records are left, so the buckets hold about the live ones.
	assertionPrune = 8
)

// ClaimAssertion implements store.Assertions: the check and the put are one
// write transaction (group-committed with concurrent writers; bbolt has one writer
// at a time), so exactly one of any number of concurrent claims succeeds.
func (s *Store) ClaimAssertion(ctx context.Context, scope string, jtiHash []byte, until time.Time) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if !validClientID(scope) || len(jtiHash) == 0 {
		return errors.New("bolt: claim assertion: scope with NUL or empty jti hash")
	}
	key := make([]byte, 0, len(scope)+1+len(jtiHash))
	key = append(append(append(key, scope...), 0), jtiHash...)
	var val [8]byte
	binary.BigEndian.PutUint64(val[:], indexMilli(until.UnixMilli()))

	// The group committer may run a write more than once: results are reset
	// on every run.
	var replay bool
	var ctxErr error
	err := s.write(func(tx *bbolt.Tx) error {
		replay, ctxErr = false, nil
		if ctxErr = ctx.Err(); ctxErr != nil {
			return nil
		}
		rows, err := tx.CreateBucketIfNotExists([]byte(bucketAssertions))
		if err != nil {
			return err
		}
		idx, err := tx.CreateBucketIfNotExists([]byte(bucketAssertionsExpiry))
		if err != nil {
			return err
		}
		nowMS := indexMilli(s.now().UnixMilli())
		if old := rows.Get(key); len(old) == 8 {
			exp := binary.BigEndian.Uint64(old)
			if nowMS < exp {
				replay = true
				return nil
			}
			if err := idx.Delete(append(bytes.Clone(old), key...)); err != nil {
				return err
			}
		}
		if err := rows.Put(key, val[:]); err != nil {
			return err
		}
		if err := idx.Put(append(val[:], key...), nil); err != nil {
			return err
		}
		return pruneAssertions(rows, idx, nowMS)
	})
	switch {
	case err != nil:
		return s.fail("claim assertion", err)
	case ctxErr != nil:
		return ctxErr
	case replay:
		return store.ErrReplay
	}
	return nil
}

// pruneAssertions deletes up to assertionPrune records that expired by
// nowMS, oldest first.
func pruneAssertions(rows, idx *bbolt.Bucket, nowMS uint64) error {
	c := idx.Cursor()
	var dead [][]byte
	for k, _ := c.First(); k != nil && len(dead) < assertionPrune; k, _ = c.Next() {
		if len(k) < 8 || binary.BigEndian.Uint64(k) > nowMS {
			break
		}
		dead = append(dead, bytes.Clone(k))
	}
	for _, k := range dead {
		rk := k[8:]
		if v := rows.Get(rk); bytes.Equal(v, k[:8]) {
			if err := rows.Delete(rk); err != nil {
				return fmt.Errorf("prune assertions: %w", err)
			}
		}
		if err := idx.Delete(k); err != nil {
			return fmt.Errorf("prune assertions: %w", err)
		}
	}
	return nil
}
