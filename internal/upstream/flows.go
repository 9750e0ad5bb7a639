package upstream

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/reuse"
	"github.com/tokengw/tokengw/internal/store"
)

const (
	grantCC      = "client_credentials"
	grantRefresh = "refresh_token"
)

// flight is the result of one flight, shared by every caller in it.
type flight struct {
	c   *cached // a success, rendered per caller
	out outcome // otherwise
	src string  // "call", "store", "remote", "replay"
}

// outcome is the flight's answer for one of its callers: leader is the
// caller that ran it.
func (f flight) outcome(g *Gateway, leader bool) outcome {
	o := f.out
	if f.c != nil {
		o = outcome{body: f.c.render(g.expiresIn(*f.c, g.now()))}
	}
	switch {
	case o.err != nil && o.kind != "":
		// An error says what failed (the provider, or the store), for
		// every caller alike.
	case !leader || f.src == "remote":
		o.kind = outcomeCoalesced
	case f.src == "store":
		o.kind = outcomeHit
	case f.src == "replay":
		o.kind = outcomeReplay
	case o.kind == "":
		o.kind = outcomeMiss
	}
	return o
}

// effective is a cached token's expiry as tokengw states it: the
// provider's, less the margin.
func (g *Gateway) effective(c cached) time.Time { return c.expires().Add(-g.o.ExpiryMargin) }

func (g *Gateway) reusable(c cached, now time.Time) bool {
	return c.Expires != 0 && g.o.Policy.Reusable(c.issuedAt(), g.effective(c), now)
}

func (g *Gateway) expiresIn(c cached, now time.Time) int64 {
	return reuse.ExpiresIn(c.issuedAt(), g.effective(c), now)
}

func (g *Gateway) sealEntry(key []byte, c cached) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return g.o.Sealer.Seal(b, key)
}

func (g *Gateway) openEntry(key []byte, e store.UpstreamEntry) (cached, error) {
	b, err := g.o.Sealer.Open(e.Sealed, key)
	if err != nil {
		return cached{}, err
	}
	var c cached
	if err := json.Unmarshal(b, &c); err != nil || len(c.Body) < 2 {
		return cached{}, errBadEntry
	}
	return c, nil
}

// lookup reads key's entry: found, or not found (nil error), or the store
// failed.
func (g *Gateway) lookup(ctx context.Context, key []byte) (cached, bool, error) {
	sctx, cancel := g.storeCtx(ctx)
	e, err := g.o.Store.UpstreamEntry(sctx, key)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound):
		return cached{}, false, nil
	case err != nil:
		return cached{}, false, err
	}
	c, err := g.openEntry(key, e)
	if err != nil {
		// Sealed under a key this replica lacks, or damaged: not usable.
		g.log.LogAttrs(ctx, slog.LevelWarn, "upstream: unreadable cached entry", slog.String("error", err.Error()))
		return cached{}, false, nil
	}
	return c, true, nil
}

// indexKeys are the index rows of a success: one per token it holds.
func (g *Gateway) indexKeys(s success) [][]byte {
	var out [][]byte
	for _, f := range []string{"access_token", "refresh_token"} {
		if t := s.stringField(f); t != "" {
			out = append(out, g.hash.sum(kindIndex, g.o.TokenURL, t))
		}
	}
	return out
}

// persist stores a success's entry, then its index rows. It reports the
// first failure; the caller decides whether that matters.
func (g *Gateway) persist(ctx context.Context, key []byte, c cached, index [][]byte, until, indexUntil time.Time) error {
	sealed, err := g.sealEntry(key, c)
	if err != nil {
		return err
	}
	now := g.now()
	sctx, cancel := g.storeCtx(ctx)
	defer cancel()
	// The entry first: it is what a replay needs.
	rows := make([]store.UpstreamEntry, 0, 1+len(index))
	rows = append(rows, store.UpstreamEntry{Key: key, Sealed: sealed, StoredAt: now, ExpiresAt: until})
	for _, ix := range index {
		rows = append(rows, store.UpstreamEntry{Key: ix, Ref: key, StoredAt: now, ExpiresAt: indexUntil})
	}
	return g.o.Store.PutUpstream(sctx, rows...)
}

// lease runs fn under key's lease; got is false when another holds it.
func (g *Gateway) lease(ctx context.Context, key []byte, fn func() flight) (flight, bool, error) {
	lk := g.hash.sum(kindLease, string(key))
	sctx, cancel := g.storeCtx(ctx)
	got, err := g.o.Store.UpstreamLease(sctx, lk, g.holder, g.o.Timeout+2*g.o.StoreTimeout)
	cancel()
	if err != nil || !got {
		return flight{}, false, err
	}
	defer func() {
		rctx, cancel := g.storeCtx(ctx)
		_ = g.o.Store.UpstreamRelease(rctx, lk, g.holder)
		cancel()
	}()
	return fn(), true, nil
}

// --- client_credentials -------------------------------------------------------------------

// ccKey is a client_credentials request's entry key; ok is false for a
// scope that does not parse (the provider says what is wrong with it).
// The hit path: no allocation.
func (g *Gateway) ccKey(q *request) (key cacheKey, ok bool) {
	scope := q.form.Get("scope")
	if scope != "" {
		s, valid := oauth.ParseScope(scope)
		if !valid {
			return cacheKey{}, false
		}
		scope = s.String()
	}
	st := g.hash.start()
	st.add(kindCC)
	st.add(g.o.TokenURL)
	q.addCredentials(st)
	st.add(scope)
	q.addOthers(st, "grant_type", "client_id", "client_secret", "scope")
	return g.hash.finish(st), true
}

func (g *Gateway) clientCredentials(ctx context.Context, q *request) outcome {
	key, ok := g.ccKey(q)
	if !ok {
		return g.forward(ctx, q, g.o.TokenURL, grantCC)
	}
	now := g.now()
	if e := g.l1.get(key); e != nil && g.reusable(e.c, now) && now.Sub(e.checked) < g.o.LocalTTL {
		g.m.hitL1.Inc()
		return outcome{body: e.body(g.expiresIn(e.c, now)), kind: outcomeHit}
	}
	leader := false
	v, _, _ := g.flights.Do(string(key[:]), func() (any, error) {
		leader = true
		return g.ccFlight(context.WithoutCancel(ctx), q, key), nil
	})
	f := v.(flight)
	switch {
	case f.src == "store":
		g.m.hitStore.Inc()
	case f.src == "remote":
		g.m.coalesced.WithLabelValues(grantCC, "remote").Inc()
	case !leader:
		g.m.coalesced.WithLabelValues(grantCC, "local").Inc()
	}
	return f.outcome(g, leader)
}

func (g *Gateway) ccFlight(ctx context.Context, q *request, k cacheKey) flight {
	key := k[:]
	c, found, err := g.lookup(ctx, key)
	if err != nil {
		// The cache is an optimisation: without the store, ask the provider.
		g.log.LogAttrs(ctx, slog.LevelWarn, "upstream: store unavailable; calling the provider uncached", slog.String("error", err.Error()))
		return g.ccCall(ctx, q, k, false)
	}
	if found && g.reusable(c, g.now()) {
		g.l1.put(k, c, g.now(), nil)
		return flight{c: &c, src: "store"}
	}
	g.l1.drop(k)
	deadline := g.now().Add(g.o.LeaseWait)
	for {
		f, got, err := g.lease(ctx, key, func() flight {
			// Under the lease, look again: another replica may have
			// stored its result and released the lease since our look.
			if c, found, err := g.lookup(ctx, key); err == nil && found && g.reusable(c, g.now()) {
				g.l1.put(k, c, g.now(), nil)
				return flight{c: &c, src: "remote"}
			}
			return g.ccCall(ctx, q, k, true)
		})
		switch {
		case err != nil:
			g.log.LogAttrs(ctx, slog.LevelWarn, "upstream: lease unavailable; calling the provider uncached", slog.String("error", err.Error()))
			return g.ccCall(ctx, q, k, false)
		case got:
			return f
		}
		// Another replica is asking the provider: wait for its result.
		if g.now().After(deadline) {
			return flight{out: unavailable("the identity provider did not answer in time; retry later", nil)}
		}
		_ = wait(ctx, g.o.PollInterval)
		if c, found, err := g.lookup(ctx, key); err == nil && found && g.reusable(c, g.now()) {
			g.l1.put(k, c, g.now(), nil)
			return flight{c: &c, src: "remote"}
		}
	}
}

// ccCall asks the provider and, on a cacheable success, stores it (when
// store is set) and keeps it in this process.
func (g *Gateway) ccCall(ctx context.Context, q *request, k cacheKey, useStore bool) flight {
	key := k[:]
	rep, sent, err := g.call(ctx, q, g.o.TokenURL, grantCC)
	if err != nil {
		return flight{out: unavailable("the identity provider is unavailable; retry later", err)}
	}
	if rep.status != http.StatusOK {
		return flight{out: outcome{reply: &rep}} // errors are never cached
	}
	s, ok := parseSuccess(rep.body)
	if !ok {
		return flight{out: unavailable("the identity provider sent an unreadable token response", errors.New("upstream: unparseable 200 from the provider"))}
	}
	c, err := newCached(s, sent, nil)
	if err != nil {
		return flight{out: unavailable("the identity provider sent an unreadable token response", err)}
	}
	now := g.now()
	if !g.reusable(c, now) {
		// Too short-lived (or no expires_in) to hand out twice.
		return flight{c: &c, src: "call"}
	}
	if useStore {
		until := c.issuedAt().Add(g.o.Policy.Window(g.effective(c).Sub(c.issuedAt())))
		if err := g.persist(ctx, key, c, g.indexKeys(s), until, c.expires()); err != nil {
			g.log.LogAttrs(ctx, slog.LevelWarn, "upstream: storing a client_credentials result failed", slog.String("error", err.Error()))
		}
	}
	g.l1.put(k, c, now, g.indexKeys(s))
	return flight{c: &c, src: "call"}
}

// --- refresh_token ------------------------------------------------------------------------

func (g *Gateway) refresh(ctx context.Context, q *request) outcome {
	rkey := g.hash.sum(kindRefresh, g.o.TokenURL, q.form.Get("refresh_token"))
	st := g.hash.start()
	st.add(kindRequest)
	st.add(g.o.TokenURL)
	q.addCredentials(st)
	q.addOthers(st, "client_id", "client_secret")
	fpk := g.hash.finish(st)
	fp := fpk[:]
	// The negative entry is keyed by the whole request: the token and the
	// fingerprint (another client's request with this token still goes to
	// the provider).
	nst := g.hash.start()
	nst.add(kindNegative)
	nst.add(string(rkey))
	nst.add(string(fp))
	nkey := g.hash.finish(nst)
	if g.neg != nil {
		if rep, ok := g.neg.get(nkey, g.now()); ok {
			g.m.hitNegative.Inc()
			return outcome{reply: &rep, kind: outcomeHit}
		}
	}
	leader := false
	v, _, _ := g.flights.Do(string(rkey)+string(fp), func() (any, error) {
		leader = true
		return g.refreshFlight(context.WithoutCancel(ctx), q, rkey, fp), nil
	})
	if !leader {
		g.m.coalesced.WithLabelValues(grantRefresh, "local").Inc()
	}
	out := v.(flight).outcome(g, leader)
	if leader && g.neg != nil && deterministicRefusal(out.reply) {
		now := g.now()
		g.neg.put(nkey, *out.reply, now.Add(g.o.NegativeTTL), now)
	}
	return out
}

func (g *Gateway) refreshFlight(ctx context.Context, q *request, rkey, fp []byte) flight {
	if f, ok := g.replay(ctx, q, rkey, fp); ok {
		return f
	}
	deadline := g.now().Add(g.o.LeaseWait)
	for {
		f, got, err := g.lease(ctx, rkey, func() flight {
			// Under the lease, look again: a replica that spent the
			// token stores its result before it releases the lease, so
			// a lease taken after that release finds the result here
			// instead of spending the token a second time.
			if f, ok := g.replay(ctx, q, rkey, fp); ok {
				return f
			}
			return g.refreshCall(ctx, q, rkey, fp)
		})
		switch {
		case err != nil:
			// Without the lease, a second replica could spend the same
			// refresh token; the token is not spent yet, so the caller retries.
			return flight{out: storeUnavailable(err)}
		case got:
			return f
		}
		if g.now().After(deadline) {
			return flight{out: unavailable("the identity provider did not answer in time; retry later", nil)}
		}
		_ = wait(ctx, g.o.PollInterval)
		if f, ok := g.replay(ctx, q, rkey, fp); ok {
			if f.src == "replay" {
				g.m.coalesced.WithLabelValues(grantRefresh, "remote").Inc()
			}
			return f
		}
	}
}

// replay answers from a stored refresh result, if there is one: to a caller
// with the same fingerprint while replays are left; any other caller's
// request goes to the provider (which decides, typically invalid_grant).
func (g *Gateway) replay(ctx context.Context, q *request, rkey, fp []byte) (flight, bool) {
	c, found, err := g.lookup(ctx, rkey)
	switch {
	case err != nil:
		return flight{out: storeUnavailable(err)}, true
	case !found:
		return flight{}, false
	case !hmac.Equal(c.Request, fp):
		g.m.refused.WithLabelValues("request_mismatch").Inc()
		return flight{out: g.forward(ctx, q, g.o.TokenURL, grantRefresh)}, true
	}
	sctx, cancel := g.storeCtx(ctx)
	e, took, err := g.o.Store.TakeUpstreamReplay(sctx, rkey, g.o.MaxReplays)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound):
		return flight{}, false
	case err != nil:
		return flight{out: storeUnavailable(err)}, true
	case !took:
		g.m.refused.WithLabelValues("max_replays").Inc()
		return flight{out: g.forward(ctx, q, g.o.TokenURL, grantRefresh)}, true
	}
	g.m.replays.Inc()
	g.log.LogAttrs(ctx, slog.LevelInfo, "upstream: refresh result replayed",
		slog.String("client_id", q.clientID), slog.Int("replay", e.Replays), slog.Int("max_replays", g.o.MaxReplays))
	return flight{c: &c, src: "replay"}, true
}

// refreshCall spends the refresh token at the provider. Its success is
// stored before anything else is done with it.
func (g *Gateway) refreshCall(ctx context.Context, q *request, rkey, fp []byte) flight {
	rep, sent, err := g.call(ctx, q, g.o.TokenURL, grantRefresh)
	if err != nil {
		return flight{out: unavailable("the identity provider is unavailable; retry later", err)}
	}
	if rep.status != http.StatusOK {
		return flight{out: outcome{reply: &rep}}
	}
	s, ok := parseSuccess(rep.body)
	if !ok {
		return flight{out: outcome{reply: &rep}} // a success tokengw cannot read goes back as sent
	}
	c, err := newCached(s, sent, fp)
	if err != nil {
		return flight{out: outcome{reply: &rep}}
	}
	until := g.now().Add(g.o.ReplayWindow)
	if err := g.persist(ctx, rkey, c, g.indexKeys(s), until, until); err != nil {
		// The provider has spent the old token: this answer is the only
		// copy of the new one, so the callers of this flight still get it.
		g.log.LogAttrs(ctx, slog.LevelError, "upstream: storing a refresh result failed; it cannot be replayed",
			slog.String("client_id", q.clientID), slog.String("error", err.Error()))
	}
	return flight{c: &c, src: "call"}
}

// --- revocation ---------------------------------------------------------------------------

func (g *Gateway) revoke(w http.ResponseWriter, r *http.Request) Result {
	q, res, ok := g.begin(w, r)
	if !ok {
		return res
	}
	token := q.form.Get("token")
	if token == "" {
		return g.fail(w, res, outcomeError, oauth.ErrInvalidRequest.WithDescription("missing token"))
	}
	if g.o.RevocationURL == "" {
		return g.fail(w, res, outcomeError, oauth.ErrInvalidRequest.WithDescription("revocation is not configured (upstream.revocation_url)"))
	}
	if !g.allowConsumer(w, q) {
		res.Outcome, res.Err = outcomeLimited, oauth.ErrRateLimited
		return res
	}
	out := g.forward(r.Context(), q, g.o.RevocationURL, "revocation")
	if out.reply != nil && out.reply.status == http.StatusOK {
		g.forget(r.Context(), token)
	}
	g.write(w, q, out)
	res.Outcome, res.Err = out.kind, out.logError()
	return res
}

// forget drops every cached entry holding token: the entry its index row
// points at, the index row, and a refresh result keyed by it.
func (g *Gateway) forget(ctx context.Context, token string) {
	ix := g.hash.sum(kindIndex, g.o.TokenURL, token)
	drop := [][]byte{ix, g.hash.sum(kindRefresh, g.o.TokenURL, token)}
	if ref, ok := g.l1.forget(keyOf(ix)); ok {
		drop = append(drop, ref[:])
	}
	sctx, cancel := g.storeCtx(ctx)
	defer cancel()
	if e, err := g.o.Store.UpstreamEntry(sctx, ix); err == nil && len(e.Ref) > 0 {
		drop = append(drop, e.Ref)
		g.l1.drop(keyOf(e.Ref))
	}
	if err := g.o.Store.DeleteUpstream(sctx, drop...); err != nil {
		g.log.LogAttrs(ctx, slog.LevelWarn, "upstream: dropping a revoked token's entries failed", slog.String("error", err.Error()))
	}
}
