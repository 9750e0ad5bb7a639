// Package clustertest proves tokengw's claims on a real Cassandra cluster:
// two gateway replicas under a recorded mixed workload while Cassandra
// nodes are killed and brought back, and a checker that reads the history.
//
// The test itself (build tag cluster, `make test-cluster`) drives
// scripts/cassandra.sh; this file and check.go are the history and the
// checker, plain code so that their own unit tests run everywhere. The
// invariants checked (issue 18):
//
//  1. per reuse key, the tokens handed out never overlap in time beyond the
//     documented bound: one token per key and reuse window, across replicas;
//  2. no token is handed out after its revocation was acknowledged, on the
//     replica that acknowledged it, nor beyond reuse.local_ttl on the other;
//  3. every token handed out, neither revoked nor expired, introspects active
//     on both replicas after the run (nothing acknowledged was lost);
//  4. with one Cassandra node down no request fails; with two down reuse hits
//     are still 200, mints 503 with Retry-After and nothing else is a 5xx;
//     within 60 s of the nodes' return, errors have stopped. A request that
//     overlapped a phase boundary is judged by the most lenient phase it
//     overlapped (Check says how).
package clustertest

import (
	"fmt"
	"sync"
	"time"
)

// Kind is what a recorded request did.
type Kind string

// Request kinds.
const (
	KindToken     Kind = "token"      // POST /oauth2/token (client_credentials)
	KindRevoke    Kind = "revoke"     // POST /oauth2/revoke of one token (RFC 7009)
	KindRevokeAll Kind = "revoke_all" // DELETE /admin/tokens?client_id=
	KindRotate    Kind = "rotate"     // POST /admin/clients/{id}/secret
)

// Op is one recorded request: what was asked of which replica, when, and
// what came back. Start is taken before the request is sent, End after its
// answer was read.
type Op struct {
	ID      int
	Kind    Kind
	Client  string
	Scope   string // token requests: the scope asked for ("" = all of the client's)
	Gen     int    // token requests: the secret generation used (rotations count up)
	Replica int
	Start   time.Time
	End     time.Time
	Status  int    // 0: no HTTP answer (Err says why)
	Err     string // transport error
	// Token is the token handed out (token requests) or revoked (revoke).
	Token      string
	ExpiresIn  int64
	RetryAfter string
}

// OK reports a 2xx answer.
func (o Op) OK() bool { return o.Status >= 200 && o.Status < 300 }

func (o Op) String() string {
	tok := ""
	if o.Token != "" {
		tok = " token …" + tail(o.Token)
	}
	ans := fmt.Sprintf("%d", o.Status)
	if o.Status == 0 {
		ans = "error " + o.Err
	}
	return fmt.Sprintf("#%d %s %s replica %d [%s .. %s] -> %s%s", o.ID, o.Kind, o.Client, o.Replica,
		o.Start.Format("15:04:05.000"), o.End.Format("15:04:05.000"), ans, tok)
}

func tail(tok string) string {
	if len(tok) > 8 {
		return tok[len(tok)-8:]
	}
	return tok
}

// History records Ops from many goroutines.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Add records op, numbering it, and returns its id.
func (h *History) Add(op Op) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.ID = len(h.ops) + 1
	h.ops = append(h.ops, op)
	return op.ID
}

// Ops returns a copy of the history in the order it was recorded.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

// Mode is what the Cassandra cluster was going through.
type Mode string

// Modes of a phase: what invariant 4 demands of the requests started in it.
const (
	WarmUp     Mode = "warm-up"    // a fresh cluster's first seconds: no 5xx but 503 + Retry-After
	Healthy    Mode = "healthy"    // every node up: no errors
	OneDown    Mode = "one-down"   // one node down (or coming back): no errors
	TwoDown    Mode = "two-down"   // two nodes down (or coming back): reuse hits 200, mints 503 + Retry-After
	Recovering Mode = "recovering" // the first 60 s after the nodes' return: errors may linger, no 5xx but 503
	Settled    Mode = "settled"    // after that: no errors
)

// Phase is a span of the run.
type Phase struct {
	Name       string
	Mode       Mode
	Start, End time.Time
}
