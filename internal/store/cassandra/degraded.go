package cassandra

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// Reads on the reuse path degrade to one replica while a quorum is short.
//
// The lookups a reuse hit, an introspection and a client refresh depend on
// (the reuse slot by key, a token by hash, a client by id) run at the
// configured read consistency (QUORUM, LOCAL_QUORUM) first. When that
// cannot be met — the coordinator says too few replicas are alive, or they
// did not answer in time, or no answer came within half the caller's
// time — the same read is sent again at ONE (LOCAL_ONE for a LOCAL_
// consistency), and the store remembers for quorumShortFor that a quorum is
// short, so that every request in an outage does not first pay a failing
// quorum attempt.
//
// "Could not be met" is judged strictly, because a read at ONE is only
// safe while a quorum really is down: an Unavailable answer (the
// coordinator's failure detector counts too few live replicas) always
// qualifies; a timeout qualifies only while the driver itself sees enough
// nodes down that a partition can lack a quorum (two of three with
// replication factor 3). A timeout with the nodes up is an overloaded
// cluster, where the one replica a read at ONE reaches may lag a
// revocation a quorum acknowledged milliseconds ago (issue 18's cluster
// test caught that in its warm-up); such a read fails instead.
//
// What that costs: every write is still made at the configured consistency
// (a revocation, a claim, a client update is acknowledged only once a
// quorum holds it), so a read at ONE can miss an acknowledged write only if
// the one replica it reaches is not among that write's quorum — possible
// only while a quorum of the replicas is down or unreachable, and only for
// writes that replica missed (hints and repair bring them). That is the
// bound docs/cassandra.md and docs/operations.md state. Writes, lightweight
// transactions and their serial read-backs never degrade: with a quorum
// down, a mint fails (503 with Retry-After) rather than risk a second token
// for one reuse slot.

// quorumShortFor is how long a failed quorum read sends the reuse-path
// reads straight to one replica.
const quorumShortFor = time.Second

// degradedFor is the consistency a read at c falls back to, and whether it
// has one (ONE, LOCAL_ONE and ANY-mapped reads have nothing lower).
func degradedFor(c gocql.Consistency) (gocql.Consistency, bool) {
	switch c {
	case gocql.LocalQuorum:
		return gocql.LocalOne, true
	case gocql.Quorum, gocql.All, gocql.Two, gocql.Three, gocql.EachQuorum:
		return gocql.One, true
	}
	return c, false
}

// quorumShortErr reports whether a failed read says the consistency could
// not be met because a quorum is down (the comment above).
func (s *Store) quorumShortErr(err error) bool {
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeUnavailable:
			return true
		case gocql.ErrCodeReadTimeout, gocql.ErrCodeReadFailure:
			return s.quorumHostsDown()
		}
		return false
	}
	if errors.Is(err, gocql.ErrTimeoutNoResponse) || errors.Is(err, context.DeadlineExceeded) {
		return s.quorumHostsDown()
	}
	return false
}

// quorumHostsDown reports whether the driver sees at least shortHosts
// nodes down (never, when shortHosts is 0).
func (s *Store) quorumHostsDown() bool {
	if s.shortHosts <= 0 {
		return false
	}
	if s.hostsDown != nil {
		return s.hostsDown() >= s.shortHosts
	}
	down := 0
	for _, h := range s.session.GetHosts() {
		if !h.IsUp() {
			down++
		}
	}
	return down >= s.shortHosts
}

// shortHostsFor is how many nodes down can leave a partition without a
// quorum of its replicas: RF - floor(RF/2) for the largest replication
// factor configured (2 of 3, 3 of 5); 0 (never) below RF 2 or when the
// replication map names no factor.
func shortHostsFor(replication map[string]string) int {
	rf := 0
	for k, v := range replication {
		if k == "class" {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > rf {
			rf = n
		}
	}
	if rf < 2 {
		return 0
	}
	return rf - rf/2
}

// quorumShort reports whether a quorum read failed less than
// quorumShortFor ago.
func (s *Store) quorumShort() bool { return s.now().UnixNano() < s.shortUntil.Load() }

func (s *Store) markQuorumShort() { s.shortUntil.Store(s.now().Add(quorumShortFor).UnixNano()) }

// scanDegradable runs an idempotent single-row read of the reuse path (the
// package comment above): at the read consistency (under half the time ctx
// has left while nodes are down), then, if that consistency could not be
// met because a quorum is down, at one replica.
// While a quorum is known to be short it goes to one replica at once.
func (s *Store) scanDegradable(ctx context.Context, stmt string, args []any, dest ...any) error {
	one, ok := degradedFor(s.readCons)
	if !ok {
		return s.idem(s.session.Query(stmt, args...)).Consistency(s.readCons).ScanContext(ctx, dest...)
	}
	if !s.quorumShort() {
		// Half the caller's time for the quorum attempt only when a
		// timeout could send the read to one replica (nodes are down);
		// otherwise the quorum read has all of it (Unavailable is quick).
		actx, cancel := ctx, context.CancelFunc(func() {})
		if s.quorumHostsDown() {
			actx, cancel = s.attemptContext(ctx)
		}
		err := s.scanAt(actx, s.readCons, stmt, args, dest)
		cancel()
		if err == nil || ctx.Err() != nil || !s.quorumShortErr(err) {
			return err
		}
		s.degradedFallbacks.Add(1)
		s.markQuorumShort()
	} else {
		s.degradedDirect.Add(1)
	}
	return s.scanAt(ctx, one, stmt, args, dest)
}

// scanAt runs one idempotent read at cons (through readFault in tests).
func (s *Store) scanAt(ctx context.Context, cons gocql.Consistency, stmt string, args, dest []any) error {
	run := func() error {
		return s.idem(s.session.Query(stmt, args...)).Consistency(cons).ScanContext(ctx, dest...)
	}
	if s.readFault != nil {
		return s.readFault(cons, run)
	}
	return run()
}
