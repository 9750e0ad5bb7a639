package assertion

// OnClaimWait sets a hook run when a claim waits for a concurrent claim of
// the same jti in this process. Set it before the Verifier is used.
func (v *Verifier) OnClaimWait(f func()) { v.flights.onWait = f }
