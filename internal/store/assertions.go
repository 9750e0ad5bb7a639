package store

import (
	"context"
	"errors"
	"time"
)

// ErrReplay is returned by ClaimAssertion when the identifier was claimed
// before and its record has not expired: the assertion is being replayed.
var ErrReplay = errors.New("store: assertion already used")

// Assertions records the one-time identifiers (the jti claim, RFC 7519
// §4.1.7) of signed JWT assertions, so that each is accepted once across
// every process sharing the store (RFC 7523 §3: "the authorization server
// ... MAY ensure that JWTs are not replayed by maintaining the set of used
// "jti" values for the length of time for which the JWT would be
// considered valid").
//
// Implementations are safe for concurrent use.
type Assertions interface {
	// ClaimAssertion records (scope, jtiHash) as used until `until` and
	// returns nil, or returns ErrReplay when a live record exists. Among
	// concurrent callers for one key, on any number of processes sharing
	// the store, exactly one gets nil: the check and the record are one
	// atomic step, never a read followed by a write.
	//
	// scope names whose identifier it is (a client id or an issuer, with a
	// prefix the caller chooses so the two cannot collide) and holds no
	// NUL; jtiHash is SHA-256 of the jti. Any other error means the claim
	// may or may not have been recorded: the caller must not accept the
	// assertion (503), and drivers that cannot tell undo a possibly
	// recorded claim on their own, so a retry is not refused by its own
	// first attempt.
	ClaimAssertion(ctx context.Context, scope string, jtiHash []byte, until time.Time) error
}
