package cassandra

// SetCASFault makes f run every lightweight transaction of s (op names
// it: "issue: claim", "create client", ...) in place of the store; f may
// skip the statement or replace its answer, e.g. with a CAS-unknown error.
func SetCASFault(s *Store, f func(op string, run func() (bool, error)) (bool, error)) { s.casFault = f }
