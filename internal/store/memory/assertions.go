package memory

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Assertions = (*Store)(nil)

// jtiSet holds claimed assertion identifiers until their expiry. The zero
// value is ready to use.
type jtiSet struct {
	mu sync.Mutex
	m  map[string]time.Time
	// sweepAt is the size at which expired records are dropped next.
	sweepAt int
}

// ClaimAssertion implements store.Assertions.
func (s *Store) ClaimAssertion(ctx context.Context, scope string, jtiHash []byte, until time.Time) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if strings.IndexByte(scope, 0) >= 0 || len(jtiHash) == 0 {
		return errors.New("memory: claim assertion: scope with NUL or empty jti hash")
	}
	k := scope + "\x00" + string(jtiHash)
	now := s.now()
	j := &s.jtis
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m == nil {
		j.m = make(map[string]time.Time)
	}
	if exp, ok := j.m[k]; ok && now.Before(exp) {
		return store.ErrReplay
	}
	j.m[k] = until
	if len(j.m) >= j.sweepAt {
		for key, exp := range j.m {
			if !now.Before(exp) {
				delete(j.m, key)
			}
		}
		j.sweepAt = 2*len(j.m) + 1024
	}
	return nil
}
