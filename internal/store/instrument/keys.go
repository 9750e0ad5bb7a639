package instrument

import (
	"context"

	"github.com/tokengw/tokengw/internal/store"
)

// SigningKeys implements store.Keys.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	start := s.now()
	k, err := s.s.SigningKeys(ctx)
	s.done("signing_keys", start, err)
	return k, err
}

// AddSigningKey implements store.Keys.
func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey) (bool, error) {
	start := s.now()
	ok, err := s.s.AddSigningKey(ctx, k)
	s.done("add_signing_key", start, err)
	return ok, err
}

// DeleteSigningKey implements store.Keys.
func (s *Store) DeleteSigningKey(ctx context.Context, slot string) error {
	start := s.now()
	err := s.s.DeleteSigningKey(ctx, slot)
	s.done("delete_signing_key", start, err)
	return err
}
