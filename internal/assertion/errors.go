package assertion

import (
	"errors"
	"fmt"
)

// ErrRefused is matched (errors.Is) by every *Error: the assertion was
// checked and refused. Callers answer invalid_client (client
// authentication) or invalid_grant (the jwt-bearer grant). Any other error
// of Verify means it could not be checked now (a key set or the store is
// unavailable): 503.
var ErrRefused = errors.New("assertion: refused")

// Check names one of the ordered checks.
type Check string

// The checks, in the order Verify takes them.
const (
	CheckSize      Check = "size"
	CheckFormat    Check = "format"
	CheckAlg       Check = "alg"
	CheckPrincipal Check = "principal"
	CheckKey       Check = "key"
	CheckSignature Check = "signature"
	CheckAudience  Check = "audience"
	CheckExpiry    Check = "expiry"
	CheckTime      Check = "time"
	CheckLifetime  Check = "lifetime"
	CheckJTI       Check = "jti"
	CheckReplay    Check = "replay"
)

// Error is a refused assertion: which check refused it, and a description
// safe to send to the client (it quotes no claim value but the alg).
type Error struct {
	Check       Check
	Description string
}

func (e *Error) Error() string {
	return fmt.Sprintf("assertion: refused (%s): %s", e.Check, e.Description)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *Error) Is(target error) bool { return target == ErrRefused }

func refused(c Check, desc string) *Error { return &Error{Check: c, Description: desc} }
