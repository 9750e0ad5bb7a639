package clustertest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Client is what the checker knows of a consumer.
type Client struct {
	ID      string
	TTL     time.Duration // its token lifetime
	Rotated bool          // its secret is rotated during the run
}

// Params are the gateway settings the invariants are stated in.
type Params struct {
	MaxElapsedFraction float64       // reuse.max_elapsed_fraction
	MinRemaining       time.Duration // reuse.min_remaining
	LocalTTL           time.Duration // reuse.local_ttl
	ClientRefresh      time.Duration // auth.client_refresh
	// Slack absorbs what the history cannot pin down: expires_in is whole
	// seconds (floor), row TTLs are whole seconds, the replicas' clocks
	// are read at moments inside [Start, End].
	Slack time.Duration
}

// Counts are one phase's numbers.
type Counts struct {
	Requests, OK, Unavailable, Other, Expected401 int
	Minted                                        int // tokens first handed out in the phase
	Checks                                        int // invariant checks evaluated on its requests
	LastError                                     time.Time
}

// Report is what Check found.
type Report struct {
	Phases []Phase
	Counts []Counts
	Tokens int
	Checks [5]int // per invariant (index 1..4)
	// LostSecret401 counts the 401s that followed a rotation answered
	// other than 200 that took effect nonetheless (its new secret was
	// never shown): not a violation of the four invariants, but reported.
	LostSecret401 int
	Violations    []string
	// Categories counts the violations by invariant and kind.
	Categories map[string]int
}

// Token is what the history says about one token.
type Token struct {
	Value         string
	Client, Scope string
	Gen           int
	Exp           time.Time // expiry, from the answers' expires_in (earliest bound)
	IssuedAt      time.Time // Exp minus the client's lifetime
	ReusableUntil time.Time // end of its reuse window (earliest bound)
	// ExpHi, IssuedAtHi and ReusableUntilHi are the latest bounds of the
	// same instants: on a loaded machine a request can take seconds, and
	// its answer's expires_in was computed at some moment of that span.
	// A violation is called only where the bounds make it certain.
	ExpHi, IssuedAtHi, ReusableUntilHi time.Time
	First                              Op // the first answer that handed it out
	ops                                []Op
	revokeAttempts                     []Op // revocations of this token, answered or not
}

// Key is a token's reuse key as the history knows it.
func (t *Token) Key() string { return fmt.Sprintf("%s|%s|gen%d", t.Client, t.Scope, t.Gen) }

// Tokens groups the history's handed-out tokens.
func Tokens(ops []Op, clients map[string]Client, p Params) map[string]*Token {
	out := map[string]*Token{}
	for _, o := range ops {
		if o.Kind != KindToken || o.Status != http.StatusOK || o.Token == "" {
			continue
		}
		t := out[o.Token]
		if t == nil {
			t = &Token{Value: o.Token, Client: o.Client, Scope: o.Scope, Gen: o.Gen, First: o}
			out[o.Token] = t
		}
		if o.End.Before(t.First.End) {
			t.First = o
		}
		// expires_in = floor(exp - now) for a now inside [Start, End]
		// (ceil for a minted token: within a second of that).
		if lo := o.Start.Add(time.Duration(o.ExpiresIn) * time.Second); lo.After(t.Exp) {
			t.Exp = lo
		}
		if hi := o.End.Add(time.Duration(o.ExpiresIn+1) * time.Second); t.ExpHi.IsZero() || hi.Before(t.ExpHi) {
			t.ExpHi = hi
		}
		t.ops = append(t.ops, o)
	}
	for _, o := range ops {
		if o.Kind == KindRevoke {
			if t := out[o.Token]; t != nil {
				t.revokeAttempts = append(t.revokeAttempts, o)
			}
		}
	}
	for _, t := range out {
		ttl := clients[t.Client].TTL
		t.IssuedAt = t.Exp.Add(-ttl)
		win := t.IssuedAt.Add(time.Duration(p.MaxElapsedFraction * float64(ttl)))
		if alt := t.Exp.Add(-p.MinRemaining); alt.Before(win) {
			win = alt
		}
		t.ReusableUntil = win
		// Minted no later than it was first handed out.
		t.IssuedAtHi = t.ExpHi.Add(-ttl)
		if t.First.End.Before(t.IssuedAtHi) {
			t.IssuedAtHi = t.First.End
		}
		t.ReusableUntilHi = t.IssuedAtHi.Add(time.Duration(p.MaxElapsedFraction * float64(ttl)))
		if alt := t.ExpHi.Add(-p.MinRemaining); alt.Before(t.ReusableUntilHi) {
			t.ReusableUntilHi = alt
		}
	}
	return out
}

// Check verifies invariants 1, 2 and 4 over the history (3 needs the live
// replicas: see Survivors and Revoked).
//
// Phase boundaries: a request is counted in the phase it started in, but
// judged for invariant 4 by the most lenient phase its span overlapped
// (judgedBy): a request that started just before a kill and ended after
// it met the fault, and is judged as the phase the fault began; one that
// started in the last moment of an outage and ended in the recovery is
// judged as recovering. Leniency: healthy = one node down = settled (no
// errors) < two down (503 with Retry-After, but reuse hits 200) <
// warm-up = recovering (503 with Retry-After).
func Check(ops []Op, phases []Phase, clients map[string]Client, p Params) Report {
	rep := Report{Phases: phases, Counts: make([]Counts, len(phases))}
	toks := Tokens(ops, clients, p)
	rep.Tokens = len(toks)
	phaseOf := func(t time.Time) int {
		for i, ph := range phases {
			if !t.Before(ph.Start) && t.Before(ph.End) {
				return i
			}
		}
		return -1
	}
	rep.Categories = map[string]int{}
	violate := func(inv int, format string, args ...any) {
		rep.Violations = append(rep.Violations, fmt.Sprintf("invariant %d: ", inv)+fmt.Sprintf(format, args...))
		cat := strings.TrimPrefix(strings.TrimPrefix(format, "key %s: "), "client %s: ")
		if len(cat) > 48 {
			cat = cat[:48]
		}
		rep.Categories[fmt.Sprintf("invariant %d: %s", inv, cat)]++
	}
	check := func(inv int, at time.Time) {
		rep.Checks[inv]++
		if i := phaseOf(at); i >= 0 {
			rep.Counts[i].Checks++
		}
	}
	// clears are the requests that clear a client's reuse rows: revoke-all
	// and secret rotation (answered or not: a 503 may have applied).
	var revokeAll, rotations, clears []Op
	for _, o := range ops {
		switch o.Kind {
		case KindRevokeAll:
			revokeAll = append(revokeAll, o)
			clears = append(clears, o)
		case KindRotate:
			rotations = append(rotations, o)
			clears = append(clears, o)
		}
	}
	for _, t := range toks {
		if i := phaseOf(t.First.Start); i >= 0 {
			rep.Counts[i].Minted++
		}
	}

	// 1. One token per key and reuse window.
	byKey := map[string][]*Token{}
	for _, t := range toks {
		byKey[t.Key()] = append(byKey[t.Key()], t)
	}
	for key, ts := range byKey {
		slices.SortFunc(ts, func(a, b *Token) int { return a.First.End.Compare(b.First.End) })
		for i, a := range ts {
			for _, o := range a.ops {
				check(1, o.Start)
				if o.Start.After(a.ReusableUntilHi.Add(p.Slack)) {
					violate(1, "key %s: token …%s handed out by %s after its reuse window ended at %s (at the latest)",
						key, tail(a.Value), o, a.ReusableUntilHi.Format("15:04:05.000"))
				}
			}
			if i+1 == len(ts) {
				continue
			}
			b := ts[i+1]
			check(1, b.First.Start)
			if !b.IssuedAtHi.Add(p.Slack).Before(a.ReusableUntil) {
				continue // b may have been minted after a's window
			}
			if invalidated(a, b.First.End, clears, p) {
				continue
			}
			violate(1, "key %s: tokens …%s (first %s) and …%s (first %s) overlap: …%s was minted by %s, inside the reuse window of …%s (until %s at least)",
				key, tail(a.Value), a.First, tail(b.Value), b.First, tail(b.Value),
				b.IssuedAtHi.Format("15:04:05.000"), tail(a.Value), a.ReusableUntil.Format("15:04:05.000"))
		}
	}

	// 2. Nothing handed out after its revocation was acknowledged.
	for _, t := range toks {
		var acks []Op
		for _, r := range t.revokeAttempts {
			if r.Status == http.StatusOK {
				acks = append(acks, r)
			}
		}
		for _, ra := range revokeAll {
			if ra.Client == t.Client && ra.Status == http.StatusOK && t.First.End.Before(ra.Start) {
				acks = append(acks, ra)
			}
		}
		for _, ack := range acks {
			for _, o := range t.ops {
				check(2, o.Start)
				switch {
				case !o.Start.After(ack.End):
				case o.Replica == ack.Replica:
					violate(2, "client %s: token …%s revoked by %s, then handed out by the same replica: %s", t.Client, tail(t.Value), ack, o)
				case o.Start.After(ack.End.Add(p.LocalTTL + p.Slack)):
					violate(2, "client %s: token …%s revoked by %s, then handed out %v later (beyond reuse.local_ttl %v) by the other replica: %s",
						t.Client, tail(t.Value), ack, o.Start.Sub(ack.End).Round(time.Millisecond), p.LocalTTL, o)
				}
			}
		}
	}

	// 4. Availability per phase.
	lastBefore := lastHandouts(ops, phases, toks)
	explained := func(o Op) bool {
		ok, lost := rotating(o, rotations, p)
		if lost {
			rep.LostSecret401++
		}
		return ok
	}
	for _, o := range ops {
		i := phaseOf(o.Start)
		if i < 0 {
			continue
		}
		// Counted in the phase it started in, judged by the most lenient
		// phase it overlapped.
		j := judgedBy(o, phases, i)
		c := &rep.Counts[i]
		c.Requests++
		switch {
		case o.OK():
			c.OK++
		case o.Status == http.StatusServiceUnavailable:
			c.Unavailable++
		case o.Status == http.StatusUnauthorized && explained(o):
			c.Expected401++
			continue
		default:
			c.Other++
		}
		check(4, o.Start)
		if o.OK() {
			continue
		}
		c.LastError = o.Start
		retryable := o.Status == http.StatusServiceUnavailable && o.RetryAfter != ""
		switch phases[j].Mode {
		case Healthy, OneDown, Settled:
			violate(4, "client %s: %s failed in phase %s (%s): %s", o.Client, o.Kind, phases[j].Name, phases[j].Mode, o)
		case TwoDown:
			if !retryable {
				violate(4, "client %s: %s answered neither 2xx nor 503 with Retry-After in phase %s: %s", o.Client, o.Kind, phases[j].Name, o)
				continue
			}
			if o.Kind != KindToken {
				continue
			}
			// The replica looked the key up at some moment of o's span: a
			// revocation, revoke-all or rotation begun before o ended may
			// have cleared the slot by then (answered or not: a 503 may
			// have applied on the replica left).
			a := lastBefore[j][handoutKey(o)]
			if a == nil || invalidated(a, o.End, clears, p) || evicted(o, ops) {
				continue
			}
			if o.Start.Add(p.Slack).Before(a.ReusableUntil) {
				violate(4, "key %s: a reuse hit was refused with two nodes down: replica %d handed out …%s (reusable until %s) by %s, then answered %s",
					a.Key(), o.Replica, tail(a.Value), a.ReusableUntil.Format("15:04:05.000"), a.First, o)
			}
		case Recovering, WarmUp:
			if !retryable {
				violate(4, "client %s: %s answered neither 2xx nor 503 with Retry-After in phase %s: %s", o.Client, o.Kind, phases[j].Name, o)
			}
		}
	}
	return rep
}

// leniency orders the modes by what invariant 4 allows: no errors
// (healthy, one node down, settled), 503 with Retry-After except for reuse
// hits (two down), 503 with Retry-After for anything (warm-up, recovering).
func leniency(m Mode) int {
	switch m {
	case TwoDown:
		return 1
	case WarmUp, Recovering:
		return 2
	}
	return 0
}

// judgedBy is the phase a request is judged by: the most lenient phase its
// span [Start, End] overlapped (the earliest of equals), starting from the
// phase it started in (i). A request sent just before two nodes were
// killed and answered after is judged as "two down"; one sent in the last
// moment of the outage and answered in the recovery, as "recovering".
func judgedBy(o Op, phases []Phase, i int) int {
	j := i
	for k := i + 1; k < len(phases) && !phases[k].Start.After(o.End); k++ {
		if leniency(phases[k].Mode) > leniency(phases[j].Mode) {
			j = k
		}
	}
	return j
}

// invalidated reports whether something may have ended a's reuse before
// `by`: a revocation of a (answered or not), or a revoke-all or secret
// rotation of its client (clears) that ended after a was minted and began
// before `by`.
func invalidated(a *Token, by time.Time, clears []Op, p Params) bool {
	for _, r := range a.revokeAttempts {
		if r.Start.Before(by) {
			return true
		}
	}
	for _, ra := range clears {
		if ra.Client == a.Client && ra.Start.Before(by) && ra.End.After(a.IssuedAt.Add(-p.Slack)) {
			return true
		}
	}
	return false
}

// evicted reports whether the replica of o dropped o's client from its
// in-process cache before or while o ran: a revocation of any of the
// client's tokens, a revoke-all or a rotation answered by that replica
// voids the client's cached entries there, and with the store down
// nothing can refill them.
func evicted(o Op, ops []Op) bool {
	for _, e := range ops {
		if e.Kind != KindToken && e.Client == o.Client && e.Replica == o.Replica && e.Start.Before(o.End) &&
			o.Start.Sub(e.Start) < 10*time.Minute {
			return true
		}
	}
	return false
}

// rotating reports whether a 401 falls where a secret rotation explains it:
// from the rotation's start until auth.client_refresh after its answer
// (the other replica still knows the old secret, the worker has sent the
// old one once more). A rotation that was not answered 200 may still have
// applied (its answer, and so the new secret, was lost): 401s follow until
// the next rotation is answered; Check counts those apart.
func rotating(o Op, rotations []Op, p Params) (explained, lostSecret bool) {
	for i, r := range rotations {
		if r.Client != o.Client || o.Start.Before(r.Start.Add(-p.Slack)) {
			continue
		}
		if o.Start.Before(r.End.Add(p.ClientRefresh + p.Slack)) {
			return true, false
		}
		if r.OK() {
			continue
		}
		next := time.Time{}
		for _, n := range rotations[i+1:] {
			if n.Client == o.Client && n.OK() {
				next = n.End.Add(p.ClientRefresh + p.Slack)
				break
			}
		}
		if next.IsZero() || o.Start.Before(next) {
			return true, true
		}
	}
	return false, false
}

func handoutKey(o Op) string {
	return fmt.Sprintf("%d|%s|%s|gen%d", o.Replica, o.Client, o.Scope, o.Gen)
}

// lastHandouts is, per phase, the token each replica last handed out per
// key before the phase began (what its in-process cache holds).
func lastHandouts(ops []Op, phases []Phase, toks map[string]*Token) []map[string]*Token {
	out := make([]map[string]*Token, len(phases))
	sorted := slices.Clone(ops)
	slices.SortFunc(sorted, func(a, b Op) int { return a.End.Compare(b.End) })
	for i, ph := range phases {
		m := map[string]*Token{}
		for _, o := range sorted {
			if !o.End.Before(ph.Start) {
				break
			}
			if o.Kind == KindToken && o.OK() && toks[o.Token] != nil {
				m[handoutKey(o)] = toks[o.Token]
			}
		}
		out[i] = m
	}
	return out
}

// Survivors are the tokens that must introspect active after the run:
// handed out, never the object of a revocation attempt nor of a revoke-all
// of their client that ended after they were minted, and expiring after
// `after`.
func Survivors(ops []Op, clients map[string]Client, p Params, after time.Time) []*Token {
	var revokeAll []Op
	for _, o := range ops {
		if o.Kind == KindRevokeAll {
			revokeAll = append(revokeAll, o)
		}
	}
	var out []*Token
	for _, t := range Tokens(ops, clients, p) {
		if t.Exp.After(after) && !invalidated(t, after.Add(time.Hour), revokeAll, p) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *Token) int { return strings.Compare(a.Value, b.Value) })
	return out
}

// Revoked are the tokens whose revocation was acknowledged (one revoke, or
// a revoke-all that began after they were first handed out) and that have
// not expired by `after`: they must introspect inactive.
func Revoked(ops []Op, clients map[string]Client, p Params, after time.Time) []*Token {
	var out []*Token
	for _, t := range Tokens(ops, clients, p) {
		if !t.Exp.After(after) {
			continue
		}
		acked := false
		for _, r := range t.revokeAttempts {
			acked = acked || r.Status == http.StatusOK
		}
		for _, o := range ops {
			if o.Kind == KindRevokeAll && o.Client == t.Client && o.Status == http.StatusOK && t.First.End.Before(o.Start) {
				acked = true
			}
		}
		if acked {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *Token) int { return strings.Compare(a.Value, b.Value) })
	return out
}

// Print writes the per-phase counts.
func (r Report) Print(logf func(string, ...any)) {
	logf("%-14s %-10s %6s %8s %6s %6s %6s %7s %7s  %s", "phase", "mode", "secs", "requests", "2xx", "503", "other", "minted", "checks", "last error")
	for i, ph := range r.Phases {
		c := r.Counts[i]
		last := "-"
		if !c.LastError.IsZero() {
			last = fmt.Sprintf("+%.1fs", c.LastError.Sub(ph.Start).Seconds())
		}
		logf("%-14s %-10s %6.1f %8d %6d %6d %6d %7d %7d  %s", ph.Name, ph.Mode, ph.End.Sub(ph.Start).Seconds(),
			c.Requests, c.OK, c.Unavailable, c.Other, c.Minted, c.Checks, last)
	}
	logf("tokens handed out: %d; checks: exclusivity %d, revocation %d, lost-nothing %d, availability %d; violations: %d",
		r.Tokens, r.Checks[1], r.Checks[2], r.Checks[3], r.Checks[4], len(r.Violations))
	if r.LostSecret401 > 0 {
		logf("401s after a secret rotation answered 503 that took effect (its new secret never shown): %d", r.LostSecret401)
	}
	cats := make([]string, 0, len(r.Categories))
	for c := range r.Categories {
		cats = append(cats, c)
	}
	slices.Sort(cats)
	for _, c := range cats {
		logf("  %5d × %s...", r.Categories[c], c)
	}
}
