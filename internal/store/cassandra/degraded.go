package cassandra

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/store"
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
// reads straight to one replica, and how long a probe that reached a
// quorum lets operations through the quorum gate (below).
const quorumShortFor = time.Second

// quorumProbeEvery is how often, while the driver sees too few nodes up
// for any quorum, one operation that needs a quorum is still sent (a
// probe: the driver may be cut off from nodes the cluster still reaches).
const quorumProbeEvery = 500 * time.Millisecond

// The quorum gate: with too few nodes up for any quorum (two of three down
// with replication factor 3, in the driver's view), a write at QUORUM or a
// lightweight transaction cannot succeed, yet each one sent costs the node
// left a request thread for the whole server-side timeout (2 s for a
// write, 5 s for a read) while it waits on replicas its failure detector
// has not convicted yet (10 to 20 s after a SIGKILL). Issue 18's cluster
// test saw those doomed mints, and doomed quorum reads, take every thread
// of the one node left, so that the reads at ONE that reuse hits need
// waited behind them and timed out. So, while a quorum is impossible, every
// operation that needs one is refused at once (store.ErrUnavailable: 503
// with Retry-After), except one probe per quorumProbeEvery; a probe that
// succeeds opens the gate for quorumShortFor. Reuse-path reads go to one
// replica at once, with no quorum attempt first.

// errQuorumDown is the cause of an operation the quorum gate refused.
var errQuorumDown = errors.New("too few nodes up for a quorum (the driver's view); not sent")

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

// needsQuorum reports whether a write at c needs more than one replica.
func needsQuorum(c gocql.Consistency) bool {
	_, ok := degradedFor(c)
	return ok
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

// hostsUpDown is the driver's count of the nodes it sees up and down.
func (s *Store) hostsUpDown() (up, down int) {
	if s.hostsHook != nil {
		return s.hostsHook()
	}
	for _, h := range s.session.GetHosts() {
		if h.IsUp() {
			up++
		} else {
			down++
		}
	}
	return up, down
}

// quorumHostsDown reports whether the driver sees at least shortHosts
// nodes down: enough that some partition may lack a quorum (never, when
// shortHosts is 0).
func (s *Store) quorumHostsDown() bool {
	if s.shortHosts <= 0 {
		return false
	}
	_, down := s.hostsUpDown()
	return down >= s.shortHosts
}

// quorumImpossible reports whether the driver sees fewer nodes up than a
// quorum of replicas: no partition can have one (never, when quorumSize is
// 0: a LOCAL_ consistency over several datacenters, whose local one the
// store does not know).
func (s *Store) quorumImpossible() bool {
	if s.quorumSize <= 1 {
		return false
	}
	up, _ := s.hostsUpDown()
	return up < s.quorumSize
}

// replicationOf turns the driver's keyspace metadata into a replication
// map ("class" and one factor per key), or nil.
func replicationOf(md *gocql.KeyspaceMetadata) map[string]string {
	if md == nil {
		return nil
	}
	out := map[string]string{"class": md.StrategyClass}
	for k, v := range md.StrategyOptions {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// factors are the replication factors of a replication map: one for
// SimpleStrategy (replication_factor), one per datacenter otherwise.
func factors(replication map[string]string) []int {
	var out []int
	for k, v := range replication {
		if k == "class" {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// shortHostsFor is how many nodes down can leave a partition without a
// quorum of its replicas: RF - floor(RF/2) for the largest replication
// factor configured (2 of 3, 3 of 5); 0 (never) below RF 2 or when the
// replication map names no factor.
func shortHostsFor(replication map[string]string) int {
	rf := 0
	for _, n := range factors(replication) {
		rf = max(rf, n)
	}
	if rf < 2 {
		return 0
	}
	return rf - rf/2
}

// quorumSizeFor is how many replicas a quorum at consistency c needs: a
// majority of all replicas (every datacenter's) for QUORUM, of the one
// datacenter's for a LOCAL_ consistency; 0 when that cannot be told (a
// LOCAL_ consistency and several datacenters) or nothing needs a quorum.
func quorumSizeFor(replication map[string]string, c gocql.Consistency) int {
	f := factors(replication)
	if len(f) == 0 {
		return 0
	}
	rf := 0
	switch {
	case c == gocql.LocalOne || c == gocql.LocalQuorum:
		if len(f) != 1 {
			return 0
		}
		rf = f[0]
	default:
		for _, n := range f {
			rf += n
		}
	}
	return rf/2 + 1
}

// quorumShort reports whether a quorum read failed less than
// quorumShortFor ago.
func (s *Store) quorumShort() bool { return s.now().UnixNano() < s.shortUntil.Load() }

func (s *Store) markQuorumShort() { s.shortUntil.Store(s.now().Add(quorumShortFor).UnixNano()) }

// withQuorum runs fn, the statements of operation op, through the quorum
// gate (above): at once while a quorum is possible; while it is not, as a
// probe at most once per quorumProbeEvery, else not at all (an error
// wrapping store.ErrUnavailable). lwt says fn runs a lightweight
// transaction or a read that needs a quorum; without, fn's writes are at
// the store's consistency and need a quorum only when that is one.
func (s *Store) withQuorum(op string, lwt bool, fn func() error) error {
	if !lwt && !needsQuorum(s.cons) || !s.quorumImpossible() {
		return fn()
	}
	now := s.now().UnixNano()
	if now >= s.quorumSeenUntil.Load() {
		next := s.probeAt.Load()
		if now < next || !s.probeAt.CompareAndSwap(next, now+int64(quorumProbeEvery)) {
			s.quorumRefused.Add(1)
			return fmt.Errorf("cassandra: %s: %w: %w", op, store.ErrUnavailable, errQuorumDown)
		}
		s.quorumProbes.Add(1)
	}
	err := fn()
	if err == nil {
		s.quorumSeenUntil.Store(s.now().Add(quorumShortFor).UnixNano())
	}
	return err
}

// scanDegradable runs an idempotent single-row read of the reuse path (the
// package comment above): at the read consistency, then, if that
// consistency could not be met because a quorum is down, at one replica
// (under half the time ctx has left for the first attempt while nodes are
// down). While a quorum is known to be short, or impossible with the nodes
// the driver sees up, it goes to one replica at once.
func (s *Store) scanDegradable(ctx context.Context, stmt string, args []any, dest ...any) error {
	one, ok := degradedFor(s.readCons)
	if !ok {
		return s.idem(s.session.Query(stmt, args...)).Consistency(s.readCons).ScanContext(ctx, dest...)
	}
	if !s.quorumShort() && !s.quorumImpossible() {
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

// Stats are the driver's counts of what it did because nodes were down or
// slow, for the operator's metrics.
type Stats struct {
	// DegradedFallbacks are reuse-path reads that failed at the read
	// consistency and were sent again to one replica; DegradedDirect those
	// sent to one replica at once while a quorum was known to be short.
	DegradedFallbacks, DegradedDirect uint64
	// QuorumProbes are operations needing a quorum that the quorum gate let
	// through as probes while the driver saw too few nodes up;
	// QuorumRefused those it refused at once (503 with Retry-After).
	QuorumProbes, QuorumRefused uint64
	// Resends counts each resend of a write whose outcome was unknown (a
	// timeout); one write may be resent several times.
	Resends uint64
}

// Stats returns the counts since Open. Safe for concurrent use.
func (s *Store) Stats() Stats {
	return Stats{
		DegradedFallbacks: s.degradedFallbacks.Load(), DegradedDirect: s.degradedDirect.Load(),
		QuorumProbes: s.quorumProbes.Load(), QuorumRefused: s.quorumRefused.Load(),
		Resends: s.resends.Load(),
	}
}
