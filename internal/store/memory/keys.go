package memory

import (
	"context"
	"slices"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Keys = (*Store)(nil)

// SigningKeys implements store.Keys.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	done, err := s.reading(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	out := make([]store.SigningKey, 0, len(s.signingKeys))
	for _, k := range s.signingKeys {
		out = append(out, cloneKey(k))
	}
	return out, nil
}

// AddSigningKey implements store.Keys: the slot is claimed under the
// store's lock.
func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey) (bool, error) {
	done, err := s.writing(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	if _, ok := s.signingKeys[k.Slot]; ok {
		return false, nil
	}
	if s.signingKeys == nil {
		s.signingKeys = make(map[string]store.SigningKey)
	}
	s.signingKeys[k.Slot] = cloneKey(k)
	return true, nil
}

// DeleteSigningKey implements store.Keys.
func (s *Store) DeleteSigningKey(ctx context.Context, slot string) error {
	done, err := s.writing(ctx)
	if err != nil {
		return err
	}
	defer done()
	delete(s.signingKeys, slot)
	return nil
}

func cloneKey(k store.SigningKey) store.SigningKey {
	k.Sealed = slices.Clone(k.Sealed)
	k.Public = slices.Clone(k.Public)
	return k
}
