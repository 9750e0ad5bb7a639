package instrument

import (
	"context"
	"errors"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Upstream = (*Store)(nil)

// errNoUpstream: the wrapped store does not keep upstream mode's rows.
var errNoUpstream = errors.New("instrument: the wrapped store does not keep upstream rows")

func (s *Store) upstream() (store.Upstream, error) {
	u, ok := s.s.(store.Upstream)
	if !ok {
		return nil, errNoUpstream
	}
	return u, nil
}

// UpstreamLease implements store.Upstream when the wrapped store does.
func (s *Store) UpstreamLease(ctx context.Context, key []byte, holder string, ttl time.Duration) (bool, error) {
	u, err := s.upstream()
	if err != nil {
		return false, err
	}
	start := s.now()
	got, err := u.UpstreamLease(ctx, key, holder, ttl)
	s.done("upstream_lease", start, err)
	return got, err
}

// UpstreamRelease implements store.Upstream when the wrapped store does.
func (s *Store) UpstreamRelease(ctx context.Context, key []byte, holder string) error {
	u, err := s.upstream()
	if err != nil {
		return err
	}
	start := s.now()
	err = u.UpstreamRelease(ctx, key, holder)
	s.done("upstream_release", start, err)
	return err
}

// PutUpstream implements store.Upstream when the wrapped store does.
func (s *Store) PutUpstream(ctx context.Context, entries ...store.UpstreamEntry) error {
	u, err := s.upstream()
	if err != nil {
		return err
	}
	start := s.now()
	err = u.PutUpstream(ctx, entries...)
	s.done("upstream_put", start, err)
	return err
}

// UpstreamEntry implements store.Upstream when the wrapped store does.
func (s *Store) UpstreamEntry(ctx context.Context, key []byte) (store.UpstreamEntry, error) {
	u, err := s.upstream()
	if err != nil {
		return store.UpstreamEntry{}, err
	}
	start := s.now()
	e, err := u.UpstreamEntry(ctx, key)
	s.done("upstream_get", start, err)
	return e, err
}

// TakeUpstreamReplay implements store.Upstream when the wrapped store does.
func (s *Store) TakeUpstreamReplay(ctx context.Context, key []byte, max int) (store.UpstreamEntry, bool, error) {
	u, err := s.upstream()
	if err != nil {
		return store.UpstreamEntry{}, false, err
	}
	start := s.now()
	e, took, err := u.TakeUpstreamReplay(ctx, key, max)
	s.done("upstream_replay", start, err)
	return e, took, err
}

// DeleteUpstream implements store.Upstream when the wrapped store does.
func (s *Store) DeleteUpstream(ctx context.Context, keys ...[]byte) error {
	u, err := s.upstream()
	if err != nil {
		return err
	}
	start := s.now()
	err = u.DeleteUpstream(ctx, keys...)
	s.done("upstream_delete", start, err)
	return err
}
