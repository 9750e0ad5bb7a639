package instrument

import (
	"context"
	"errors"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Assertions = (*Store)(nil)

// errNoAssertions: the wrapped store does not record assertion identifiers.
var errNoAssertions = errors.New("instrument: the wrapped store does not record assertion identifiers")

// ClaimAssertion implements store.Assertions when the wrapped store does.
func (s *Store) ClaimAssertion(ctx context.Context, scope string, jtiHash []byte, until time.Time) error {
	a, ok := s.s.(store.Assertions)
	if !ok {
		return errNoAssertions
	}
	start := s.now()
	err := a.ClaimAssertion(ctx, scope, jtiHash, until)
	s.done("claim_assertion", start, err)
	return err
}
