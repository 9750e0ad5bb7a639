// Package instrument wraps a store.Store so every operation reports its
// duration and outcome to an observer (the metrics layer), without the
// store packages knowing about metrics.
package instrument

import (
	"context"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

// Observer receives one call per store operation. It must be safe for
// concurrent use and cheap: it runs on the request path.
type Observer func(op string, d time.Duration, err error)

// Store is an instrumented store.Store.
type Store struct {
	s   store.Store
	obs Observer
	now func() time.Time
}

var _ store.Store = (*Store)(nil)

// Wrap instruments s. now is the clock used for durations (default time.Now).
func Wrap(s store.Store, obs Observer, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{s: s, obs: obs, now: now}
}

// Unwrap returns the wrapped store.
func (s *Store) Unwrap() store.Store { return s.s }

func (s *Store) done(op string, start time.Time, err error) {
	s.obs(op, s.now().Sub(start), err)
}

// Issue implements store.Tokens.
func (s *Store) Issue(ctx context.Context, tok store.Token, cur *store.Current) (store.Current, bool, error) {
	start := s.now()
	c, ok, err := s.s.Issue(ctx, tok, cur)
	s.done("issue", start, err)
	return c, ok, err
}

// Current implements store.Tokens.
func (s *Store) Current(ctx context.Context, clientID, reuseKey string) (store.Current, error) {
	start := s.now()
	c, err := s.s.Current(ctx, clientID, reuseKey)
	s.done("current", start, err)
	return c, err
}

// Token implements store.Tokens.
func (s *Store) Token(ctx context.Context, hash []byte) (store.Token, error) {
	start := s.now()
	t, err := s.s.Token(ctx, hash)
	s.done("token", start, err)
	return t, err
}

// Revoke implements store.Tokens.
func (s *Store) Revoke(ctx context.Context, hash []byte) error {
	start := s.now()
	err := s.s.Revoke(ctx, hash)
	s.done("revoke", start, err)
	return err
}

// ClearCurrents implements store.Tokens.
func (s *Store) ClearCurrents(ctx context.Context, clientID string) error {
	start := s.now()
	err := s.s.ClearCurrents(ctx, clientID)
	s.done("clear_currents", start, err)
	return err
}

// RevokeClient implements store.Tokens.
func (s *Store) RevokeClient(ctx context.Context, clientID string) (int, error) {
	start := s.now()
	n, err := s.s.RevokeClient(ctx, clientID)
	s.done("revoke_client", start, err)
	return n, err
}

// Client implements store.Clients.
func (s *Store) Client(ctx context.Context, id string) (store.Client, error) {
	start := s.now()
	c, err := s.s.Client(ctx, id)
	s.done("client", start, err)
	return c, err
}

// Clients implements store.Clients.
func (s *Store) Clients(ctx context.Context) ([]store.Client, error) {
	start := s.now()
	c, err := s.s.Clients(ctx)
	s.done("clients", start, err)
	return c, err
}

// CreateClient implements store.Clients.
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	start := s.now()
	err := s.s.CreateClient(ctx, c)
	s.done("create_client", start, err)
	return err
}

// UpdateClient implements store.Clients.
func (s *Store) UpdateClient(ctx context.Context, c store.Client, ifUpdatedAt time.Time) error {
	start := s.now()
	err := s.s.UpdateClient(ctx, c, ifUpdatedAt)
	s.done("update_client", start, err)
	return err
}

// DeleteClient implements store.Clients.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	start := s.now()
	err := s.s.DeleteClient(ctx, id)
	s.done("delete_client", start, err)
	return err
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	start := s.now()
	err := s.s.Ping(ctx)
	s.done("ping", start, err)
	return err
}

// Close implements store.Store.
func (s *Store) Close() error { return s.s.Close() }
