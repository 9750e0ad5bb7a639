package memory

import (
	"context"
	"slices"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Keys = (*Store)(nil)

// SigningKeys implements store.Keys.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	out := make([]store.SigningKey, 0, len(s.signingKeys))
	for _, k := range s.signingKeys {
		out = append(out, cloneKey(k))
	}
	return out, nil
}

// AddSigningKey implements store.Keys: the slot is claimed under the
// store's lock.
func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, store.ErrClosed
	}
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
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	delete(s.signingKeys, slot)
	return nil
}

func cloneKey(k store.SigningKey) store.SigningKey {
	k.Sealed = slices.Clone(k.Sealed)
	k.Public = slices.Clone(k.Public)
	return k
}
