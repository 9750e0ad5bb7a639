// Package memory is an in-process store.Store for tests and throwaway runs.
// Nothing survives the process.
//
// Expiry is judged by the clock (injectable): an expired token or reuse row
// is no longer returned, and every write (Issue, Revoke, ClearCurrents,
// RevokeClient) first deletes every token and reuse row that has expired by
// then, oldest first, from a min-heap of expiry times. So the store is
// bounded without a timer: after a write it holds only the tokens and
// reuse rows still live at that write (revoked tokens included, until they
// expire), plus the clients, and the heaps one entry per row written whose
// expiry has not passed (a row deleted early, by a revocation or a cleared
// slot, leaves its entry until then). Each row is pushed and popped once: the sweep
// costs O(log n) per row issued, amortised; one write pays for all the rows
// that expired since the write before it.
package memory

import (
	"bytes"
	"container/heap"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Store = (*Store)(nil)

// Options configures a Store.
type Options struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
}

type slot struct{ client, key string }

// expiring is a heap entry: the row of key expires at at. An entry whose row
// was replaced since (a later expiry) or deleted is stale, and skipped.
type expiring[K comparable] struct {
	at  time.Time
	key K
}

// expiryHeap is a min-heap of expiring entries, earliest first.
type expiryHeap[K comparable] []expiring[K]

func (h expiryHeap[K]) Len() int           { return len(h) }
func (h expiryHeap[K]) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap[K]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap[K]) Push(x any)        { *h = append(*h, x.(expiring[K])) }
func (h *expiryHeap[K]) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// due pops and returns the key of the earliest entry if it is due by now
// (expired: !now.Before(at)).
func (h *expiryHeap[K]) due(now time.Time) (K, time.Time, bool) {
	if len(*h) == 0 || now.Before((*h)[0].at) {
		var zero K
		return zero, time.Time{}, false
	}
	e := heap.Pop(h).(expiring[K])
	return e.key, e.at, true
}

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	now func() time.Time

	mu       sync.RWMutex
	closed   bool
	tokens   map[string]store.Token
	currents map[slot]store.Current
	clients  map[string]store.Client

	tokenExpiry   expiryHeap[string] // one entry per token written
	currentExpiry expiryHeap[slot]   // one entry per reuse row written
	// signingKeys is the JWT key ring by slot (keys.go); made on first add.
	signingKeys map[string]store.SigningKey
	// jtis are the claimed assertion identifiers (assertions.go).
	jtis jtiSet

	*Upstream // upstream mode's rows (upstream.go)
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{
		now:      opts.Now,
		tokens:   make(map[string]store.Token),
		currents: make(map[slot]store.Current),
		clients:  make(map[string]store.Client),
		Upstream: NewUpstream(opts.Now),
	}
}

// sweep deletes every token and reuse row expired by now. Callers hold mu
// for writing.
func (s *Store) sweep(now time.Time) {
	for {
		k, at, ok := s.tokenExpiry.due(now)
		if !ok {
			break
		}
		if t, held := s.tokens[k]; held && t.ExpiresAt.Equal(at) {
			delete(s.tokens, k)
		}
	}
	for {
		k, at, ok := s.currentExpiry.due(now)
		if !ok {
			break
		}
		if c, held := s.currents[k]; held && c.ReuseUntil.Equal(at) {
			delete(s.currents, k)
		}
	}
}

// TokenCount reports how many unexpired tokens are held (for tests).
func (s *Store) TokenCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.now()
	n := 0
	for _, t := range s.tokens {
		if now.Before(t.ExpiresAt) {
			n++
		}
	}
	return n
}

func cloneToken(t store.Token) store.Token {
	t.Hash = bytes.Clone(t.Hash)
	return t
}

func cloneCurrent(c store.Current) store.Current {
	c.TokenHash = bytes.Clone(c.TokenHash)
	c.Sealed = bytes.Clone(c.Sealed)
	return c
}

func cloneClient(c store.Client) store.Client {
	c.Scopes = slices.Clone(c.Scopes)
	c.Resources = slices.Clone(c.Resources)
	c.GrantTypes = slices.Clone(c.GrantTypes)
	if c.Limit != nil {
		l := *c.Limit
		c.Limit = &l
	}
	return c
}

// Issue implements store.Tokens.
func (s *Store) Issue(ctx context.Context, tok store.Token, cur *store.Current) (store.Current, bool, error) {
	done, err := s.writing(ctx)
	if err != nil {
		return store.Current{}, false, err
	}
	defer done()
	now := s.now()
	s.sweep(now)
	if cur != nil {
		k := slot{cur.ClientID, cur.ReuseKey}
		if have, ok := s.currents[k]; ok && now.Before(have.ReuseUntil) {
			return cloneCurrent(have), false, nil
		}
		s.currents[k] = cloneCurrent(*cur)
		heap.Push(&s.currentExpiry, expiring[slot]{at: cur.ReuseUntil, key: k})
	}
	k := string(tok.Hash)
	s.tokens[k] = cloneToken(tok)
	heap.Push(&s.tokenExpiry, expiring[string]{at: tok.ExpiresAt, key: k})
	if cur != nil {
		return cloneCurrent(*cur), true, nil
	}
	return store.Current{}, false, nil
}

// Current implements store.Tokens.
func (s *Store) Current(ctx context.Context, clientID, reuseKey string) (store.Current, error) {
	done, err := s.reading(ctx)
	if err != nil {
		return store.Current{}, err
	}
	defer done()
	c, ok := s.currents[slot{clientID, reuseKey}]
	if !ok || !s.now().Before(c.ReuseUntil) {
		return store.Current{}, store.ErrNotFound
	}
	return cloneCurrent(c), nil
}

// Token implements store.Tokens.
func (s *Store) Token(ctx context.Context, hash []byte) (store.Token, error) {
	done, err := s.reading(ctx)
	if err != nil {
		return store.Token{}, err
	}
	defer done()
	t, ok := s.tokens[string(hash)]
	if !ok || !s.now().Before(t.ExpiresAt) {
		return store.Token{}, store.ErrNotFound
	}
	return cloneToken(t), nil
}

// Revoke implements store.Tokens.
func (s *Store) Revoke(ctx context.Context, hash []byte) error {
	done, err := s.writing(ctx)
	if err != nil {
		return err
	}
	defer done()
	now := s.now()
	s.sweep(now)
	t, ok := s.tokens[string(hash)]
	if !ok || !now.Before(t.ExpiresAt) {
		return store.ErrNotFound
	}
	t.Revoked = true
	s.tokens[string(hash)] = t
	k := slot{t.ClientID, t.ReuseKey}
	if c, ok := s.currents[k]; ok && bytes.Equal(c.TokenHash, hash) {
		delete(s.currents, k)
	}
	return nil
}

// ClearCurrents implements store.Tokens.
func (s *Store) ClearCurrents(ctx context.Context, clientID string) error {
	done, err := s.writing(ctx)
	if err != nil {
		return err
	}
	defer done()
	s.sweep(s.now())
	for k := range s.currents {
		if k.client == clientID {
			delete(s.currents, k)
		}
	}
	return nil
}

// RevokeClient implements store.Tokens: one pass over every token under
// the lock (this driver is for tests and throwaway runs).
func (s *Store) RevokeClient(ctx context.Context, clientID string) (int, error) {
	done, err := s.writing(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	now := s.now()
	s.sweep(now)
	n := 0
	for k, t := range s.tokens {
		if t.ClientID != clientID || t.Revoked || !now.Before(t.ExpiresAt) {
			continue
		}
		t.Revoked = true
		s.tokens[k] = t
		n++
	}
	for k := range s.currents {
		if k.client == clientID {
			delete(s.currents, k)
		}
	}
	return n, nil
}

// Client implements store.Clients.
func (s *Store) Client(ctx context.Context, id string) (store.Client, error) {
	done, err := s.reading(ctx)
	if err != nil {
		return store.Client{}, err
	}
	defer done()
	c, ok := s.clients[id]
	if !ok {
		return store.Client{}, store.ErrNotFound
	}
	return cloneClient(c), nil
}

// Clients implements store.Clients.
func (s *Store) Clients(ctx context.Context) ([]store.Client, error) {
	done, err := s.reading(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	out := make([]store.Client, 0, len(s.clients))
	for _, c := range s.clients {
		out = append(out, cloneClient(c))
	}
	slices.SortFunc(out, func(a, b store.Client) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// CreateClient implements store.Clients.
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	return s.putClient(ctx, c, nil)
}

// UpdateClient implements store.Clients: the comparison with ifUpdatedAt
// and the write happen under one lock.
func (s *Store) UpdateClient(ctx context.Context, c store.Client, ifUpdatedAt time.Time) error {
	return s.putClient(ctx, c, &ifUpdatedAt)
}

// putClient creates c (ifUpdatedAt nil) or replaces the version updated
// at *ifUpdatedAt.
func (s *Store) putClient(ctx context.Context, c store.Client, ifUpdatedAt *time.Time) error {
	done, err := s.writing(ctx)
	if err != nil {
		return err
	}
	defer done()
	have, exists := s.clients[c.ID]
	switch {
	case ifUpdatedAt != nil && !exists:
		return store.ErrNotFound
	case ifUpdatedAt != nil && have.UpdatedAt.UnixMilli() != ifUpdatedAt.UnixMilli():
		return store.ErrConflict
	case ifUpdatedAt == nil && exists:
		return store.ErrExists
	}
	s.clients[c.ID] = cloneClient(c)
	return nil
}

// DeleteClient implements store.Clients.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	if _, ok := s.clients[id]; !ok {
		s.mu.Unlock()
		return store.ErrNotFound
	}
	delete(s.clients, id)
	s.mu.Unlock()
	return s.ClearCurrents(ctx, id)
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return ctx.Err()
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// reading takes the read lock for a call with ctx and returns its release;
// the error is ctx's, or ErrClosed once the store is closed.
func (s *Store) reading(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, store.ErrClosed
	}
	return s.mu.RUnlock, nil
}

// writing is reading with the write lock.
func (s *Store) writing(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, store.ErrClosed
	}
	return s.mu.Unlock, nil
}
