package bolt

import (
	"context"
	"encoding/json"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Keys = (*Store)(nil)

// bucketSigningKeys holds the JWT signing key ring: slot -> JSON record. It
// is made by the first AddSigningKey (a database without it has no keys),
// so the bucket layout version does not change.
const bucketSigningKeys = "signing_keys"

// SigningKeys implements store.Keys.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	out := []store.SigningKey{}
	err := s.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketSigningKeys))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var sk store.SigningKey
			if err := json.Unmarshal(v, &sk); err != nil {
				return fmt.Errorf("%w: signing key %q: %w", errCorrupt, k, err)
			}
			out = append(out, sk)
			return nil
		})
	})
	if err != nil {
		return nil, s.fail("signing keys", err)
	}
	return out, nil
}

// AddSigningKey implements store.Keys: the check of the slot and the insert
// are one transaction, so exactly one of concurrent callers adds its key.
func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey) (bool, error) {
	if err := s.begin(ctx); err != nil {
		return false, err
	}
	v, err := json.Marshal(k)
	if err != nil {
		return false, fmt.Errorf("bolt: add signing key: %w", err)
	}
	added := false
	err = s.write(func(tx *bbolt.Tx) error {
		added = false // the committer may run this more than once
		b, err := tx.CreateBucketIfNotExists([]byte(bucketSigningKeys))
		if err != nil {
			return err
		}
		if b.Get([]byte(k.Slot)) != nil {
			return nil
		}
		added = true
		return b.Put([]byte(k.Slot), v)
	})
	if err != nil {
		return false, s.fail("add signing key", err)
	}
	return added, nil
}

// DeleteSigningKey implements store.Keys.
func (s *Store) DeleteSigningKey(ctx context.Context, slot string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	err := s.write(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketSigningKeys))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(slot))
	})
	return s.fail("delete signing key", err)
}
