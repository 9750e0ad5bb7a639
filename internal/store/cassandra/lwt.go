package cassandra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/store"
)

// Lightweight transactions on a cluster, and what happens when a node dies.
//
// A compare-and-set whose coordinator cannot tell whether it was applied
// ("CAS operation result is unknown - proposal accepted by 1 but not a
// quorum", a write timeout during the Paxos rounds, a connection that
// closed or a deadline that passed with the statement in flight) is not an
// answer. Each such outcome is resolved by reading the row back at the
// serial consistency: a SERIAL (or LOCAL_SERIAL) read runs a Paxos round
// of its own and so completes any proposal a quorum accepted before it
// answers. What the row then holds decides: this call's value (applied),
// another value (not applied), nothing (not applied, and the statement is
// sent again with the same values, so that a proposal accepted by a
// minority and completed later writes the same row).
//
// A statement is sent under a deadline of half the time the caller has
// left, so that a coordinator that hangs (a node that died with the
// statement in flight) leaves time to resolve the outcome on a live one.
// Idempotent statements are retried on the next host after a transient
// error (a closed connection included: the usual sign of a node that just
// died). The driver's speculative execution is not used: when the query
// plan has no further host, v2.1.2 answers the speculative attempt's "no
// hosts available" at once, ahead of the first attempt's real answer.

// casAttempts bounds how often one compare-and-set is sent when its
// outcome stays unknown.
const casAttempts = 3

// serialFor is the serial consistency that goes with the configured one: a
// LOCAL_ consistency keeps Paxos in the local datacenter (LOCAL_SERIAL),
// every other one runs it across the cluster (SERIAL).
func serialFor(c gocql.Consistency) gocql.Consistency {
	switch c {
	case gocql.LocalOne, gocql.LocalQuorum:
		return gocql.LocalSerial
	}
	return gocql.Serial
}

// casUnknown reports whether a failed lightweight transaction may have been
// applied, by the driver's error types: the coordinator said it cannot
// tell (CAS write unknown, a write timeout or failure of any write type),
// or the answer never came (client timeout, closed or reset connection, a
// deadline that passed). Not when the request never left (no connection, a value
// that does not marshal), or was refused before any Paxos round
// (unavailable, invalid, overloaded): those were not applied.
func casUnknown(err error) bool {
	var (
		unknown  *gocql.RequestErrCASWriteUnknown
		wtimeout *gocql.RequestErrWriteTimeout
		wfail    *gocql.RequestErrWriteFailure
	)
	switch {
	case errors.As(err, &unknown), errors.As(err, &wtimeout), errors.As(err, &wfail):
		return true
	case errors.Is(err, gocql.ErrTimeoutNoResponse), errors.Is(err, gocql.ErrConnectionClosed),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	// The connection broke with the statement sent (a reset when the
	// coordinator was killed): it may have run.
	var ne net.Error
	return errors.As(err, &ne) && !errors.Is(err, gocql.ErrNoConnections)
}

// attemptContext bounds one statement to half the time ctx has left (and
// to the store's timeout), so that an unknown outcome can still be
// resolved within ctx.
func (s *Store) attemptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := s.timeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return context.WithTimeout(ctx, d)
}

// idem marks q idempotent: retried on the next host after a transient error.
func (s *Store) idem(q *gocql.Query) *gocql.Query {
	return q.Idempotent(true)
}

// casOutcome is what resolving an unknown outcome found: whether the row
// shows this call's write, and whether that settles it (false: the write
// is not there and may be sent again).
type casOutcome struct{ applied, decided bool }

// cas runs a compare-and-set (run) and resolves an unknown outcome with
// check, which reads the row at the serial consistency. It returns what
// the statement reported, or what check decided.
func (s *Store) cas(ctx context.Context, op string, run func(context.Context) (bool, error),
	check func(context.Context) (casOutcome, error)) (bool, error) {
	var last error
	for range casAttempts {
		actx, cancel := s.attemptContext(ctx)
		var (
			applied bool
			err     error
		)
		if s.casFault != nil {
			applied, err = s.casFault(op, func() (bool, error) { return run(actx) })
		} else {
			applied, err = run(actx)
		}
		cancel()
		if err == nil {
			return applied, nil
		}
		if ctx.Err() != nil || !casUnknown(err) {
			return false, classify(op, err)
		}
		out, rerr := check(ctx)
		if rerr != nil {
			return false, classify(op+": resolve unknown outcome", errors.Join(err, rerr))
		}
		if out.decided {
			return out.applied, nil
		}
		last = err
	}
	return false, fmt.Errorf("cassandra: %s: %w: outcome unknown %d times: %w", op, store.ErrUnavailable, casAttempts, last)
}

// serialRead runs an idempotent read at the serial consistency, which
// completes any accepted proposal on the row first.
func (s *Store) serialRead(ctx context.Context, stmt string, args []any, dest ...any) (bool, error) {
	err := s.idem(s.session.Query(stmt, args...)).Consistency(s.serial).ScanContext(ctx, dest...)
	if errors.Is(err, gocql.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
