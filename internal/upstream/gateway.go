package upstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/limiter"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/reuse"
	"github.com/tokengw/tokengw/internal/seal"
	"github.com/tokengw/tokengw/internal/store"
)

// ClientLimiter is the per-consumer token-bucket set, keyed by client id
// (limiter.Set[string]). Safe for concurrent use.
type ClientLimiter interface {
	Allow(key string, l limiter.Limit) limiter.Decision
}

// FailedAuthLimiter is the per-caller-address budget of failed client
// authentications (limiter.Set[netip.Addr]; an IPv6 caller's key is its
// /64). Safe for concurrent use.
type FailedAuthLimiter interface {
	Blocked(key netip.Addr, l limiter.Limit) (bool, time.Duration)
	Strike(key netip.Addr, l limiter.Limit) limiter.Decision
}

// Options configures a Gateway. TokenURL, Store, Sealer, CacheKey, Consumer
// and FailedIP are required.
type Options struct {
	TokenURL      string // the provider's token endpoint
	RevocationURL string // the provider's RFC 7009 endpoint; "" = revocation answers 503
	// HTTPClient talks to the provider (NewHTTPClient); default a plain client.
	HTTPClient *http.Client
	Timeout    time.Duration // per upstream call; default 5s
	// ExpiryMargin is subtracted from the provider's expiry in every
	// cached answer's expires_in.
	ExpiryMargin time.Duration
	// Policy decides, as for local tokens, whether a cached token may be
	// handed out again (judged on [sent, expiry − ExpiryMargin]).
	Policy       reuse.Policy
	ReplayWindow time.Duration // how long a refresh success is replayed
	MaxReplays   int           // replays per refresh success
	// NegativeTTL is how long a provider's invalid_grant to one exact
	// refresh request is answered again (negative.go): 0 means
	// DefaultNegativeTTL (2s), negative turns it off; at most
	// MaxNegativeTTL.
	NegativeTTL time.Duration
	// LocalTTL: an in-process entry older than this is re-checked against
	// the store (a revocation on another replica); 0 = every hit.
	LocalTTL     time.Duration
	CacheEntries int // in-process client_credentials entries; default 100000

	Store        store.Upstream
	StoreTimeout time.Duration // per store operation; default 2s
	Sealer       *seal.Sealer
	CacheKey     []byte // keyed-hash key shared by the replicas (DeriveCacheKey)
	// LeaseWait bounds how long a request waits for another replica's
	// upstream call; default Timeout + 2 × StoreTimeout.
	LeaseWait    time.Duration
	PollInterval time.Duration // how often a waiting request looks for the result; default 20ms

	MaxBodyBytes   int64         // request body cap; default 8192
	BodyTimeout    time.Duration // bound on reading the body; 0 = the server's read timeout only
	Consumer       ClientLimiter
	ConsumerLimit  limiter.Limit
	FailedIP       FailedAuthLimiter
	FailedIPLimit  limiter.Limit
	TrustedProxies []netip.Prefix

	Logger *slog.Logger
	Now    func() time.Time
}

// Gateway serves upstream mode. Create it with New; it is safe for
// concurrent use.
type Gateway struct {
	o       Options
	prov    provider
	hash    *hasher
	l1      *l1
	forms   *oauth.FormReader // request bodies, at most MaxBodyBytes
	neg     *negCache         // nil: no negative entries
	flights singleflight.Group
	holder  string // this process's lease identity
	m       *metrics
	log     *slog.Logger
	now     func() time.Time
}

// New validates opts and builds a Gateway.
func New(opts Options) (*Gateway, error) {
	if opts.TokenURL == "" || opts.Store == nil || opts.Sealer == nil || len(opts.CacheKey) < 16 ||
		opts.Consumer == nil || opts.FailedIP == nil {
		return nil, errors.New("upstream: TokenURL, Store, Sealer, CacheKey (16+ bytes), Consumer and FailedIP are required")
	}
	if opts.ReplayWindow < 0 || opts.MaxReplays < 0 || opts.ExpiryMargin < 0 || opts.LocalTTL < 0 {
		return nil, errors.New("upstream: ReplayWindow, MaxReplays, ExpiryMargin and LocalTTL must not be negative")
	}
	if opts.NegativeTTL > MaxNegativeTTL {
		return nil, errors.New("upstream: NegativeTTL must be at most 5s")
	}
	if opts.NegativeTTL == 0 {
		opts.NegativeTTL = DefaultNegativeTTL
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = 2 * time.Second
	}
	if opts.LeaseWait <= 0 {
		opts.LeaseWait = opts.Timeout + 2*opts.StoreTimeout
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	if opts.CacheEntries <= 0 {
		opts.CacheEntries = 100000
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 8192
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	g := &Gateway{
		o: opts, prov: provider{client: opts.HTTPClient, timeout: opts.Timeout},
		hash: newHasher(opts.CacheKey), l1: newL1(opts.CacheEntries), forms: oauth.NewFormReader(opts.MaxBodyBytes),
		holder: hex.EncodeToString(id[:]), m: newMetrics(), log: opts.Logger, now: opts.Now,
	}
	if opts.NegativeTTL > 0 {
		g.neg = newNegCache(opts.CacheEntries)
	}
	return g, nil
}

// Collectors are the gateway's Prometheus metrics, for the registry of
// /metrics.
func (g *Gateway) Collectors() []prometheus.Collector { return g.m.collectors() }

// Result is what one request came to, for its access log line and the
// token endpoint's metrics (package server records it).
type Result struct {
	ClientID string // as presented ("" when none could be read)
	Grant    string // grant_type as sent ("" for revocation)
	// Outcome is hit, miss, coalesced, replay, forwarded, upstream_error,
	// limited or error (the outcome* constants).
	Outcome string
	// Err is tokengw's own error answer (its code and internal cause go
	// to the log), or, for a provider's error passed through, the
	// provider's error code alone. nil on a success.
	Err *oauth.Error
}

// ServeToken serves POST /oauth2/token in upstream mode.
func (g *Gateway) ServeToken(w http.ResponseWriter, r *http.Request) Result { return g.token(w, r) }

// ServeRevoke serves POST /oauth2/revoke in upstream mode.
func (g *Gateway) ServeRevoke(w http.ResponseWriter, r *http.Request) Result { return g.revoke(w, r) }

// request is one parsed token-endpoint request.
type request struct {
	r        *http.Request
	raw      string     // the body as sent, forwarded unchanged
	form     url.Values // parsed; empty parameters dropped
	clientID string     // as presented ("" when none could be read)
	ipKey    netip.Addr
}

// addCredentials adds to a keyed hash what it takes as the presented
// credentials: the Authorization header and the body's client_id and
// client_secret, exactly as sent.
func (q *request) addCredentials(st *hashState) {
	st.add(q.r.Header.Get("Authorization"))
	st.add(q.form.Get("client_id"))
	st.add(q.form.Get("client_secret"))
}

// addOthers adds to a keyed hash the form's parameters other than skip, as
// sorted name/value pairs (the values of a repeated resource or audience
// sorted too, joined by NUL).
func (q *request) addOthers(st *hashState, skip ...string) {
	var arr [8]string // most forms fit: no allocation
	names := arr[:0]
	for k := range q.form {
		if !slices.Contains(skip, k) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		st.add(k)
		vs := q.form[k]
		if len(vs) == 1 {
			st.add(vs[0])
			continue
		}
		vs = slices.Clone(vs)
		slices.Sort(vs)
		st.add(strings.Join(vs, "\x00"))
	}
}

// multiValued are the parameters that may be repeated: RFC 8707 §2
// ("resource" ... "MAY be included multiple times") and the audience of
// RFC 8693 §2.1.
func multiValued(k string) bool { return k == "resource" || k == "audience" }

// Header values of every success, shared and never modified.
var (
	hdrJSON    = []string{"application/json"}
	hdrNoStore = []string{"no-store"}
	hdrNoCache = []string{"no-cache"}
)

func (g *Gateway) readRequest(w http.ResponseWriter, r *http.Request) (*request, *oauth.Error) {
	if oerr := g.forms.Admit(w, r); oerr != nil {
		return nil, oerr
	}
	if g.o.BodyTimeout > 0 {
		// A slow body holds a connection; bound it as the local endpoint does.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(g.o.BodyTimeout))
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	body, err := g.forms.Read(r.Body)
	if err != nil {
		if errors.Is(err, oauth.ErrBodyTooLarge) {
			w.Header().Set("Connection", "close") // the rest of the body is not read
			return nil, oauth.ErrRequestTooLarge
		}
		return nil, oauth.ErrInvalidRequest.WithDescription("unreadable request body")
	}
	form, shape, err := oauth.ParseFormShape(body)
	if err != nil {
		return nil, oauth.ErrInvalidRequest.WithDescription("malformed form body")
	}
	// RFC 6749 §3.2: parameters "MUST NOT be included more than once", and
	// those "sent without a value MUST be treated as if they were omitted".
	// The walk has nothing to do when the parser saw neither.
	if shape.Repeats || shape.Empties {
		for k, v := range form {
			if len(v) == 1 { // the common case: nothing to drop, nothing repeated
				if v[0] == "" {
					delete(form, k)
				}
				continue
			}
			v = slices.DeleteFunc(v, func(s string) bool { return s == "" })
			switch {
			case len(v) == 0:
				delete(form, k)
			case len(v) > 1 && !multiValued(k):
				return nil, oauth.ErrInvalidRequest.WithDescription("a parameter is repeated")
			default:
				form[k] = v
			}
		}
	}
	if r.URL.RawQuery != "" {
		if q, err := url.ParseQuery(r.URL.RawQuery); err != nil || q.Has("client_secret") {
			return nil, oauth.ErrInvalidRequest.WithDescription("credentials must not be sent in the query string")
		}
	}
	q := &request{r: r, raw: body, form: form}
	if c, err := clientauth.FromRequestValues(r, form); err == nil {
		q.clientID = c.ID
	} else if id := form.Get("client_id"); clientauth.ValidClientID(id) {
		q.clientID = id // a public client, or credentials the provider will judge
	}
	return q, nil
}

// begin runs what every POST starts with: the failed-authentication block of
// the caller's address and the form. ok is false when it answered already
// (with res).
func (g *Gateway) begin(w http.ResponseWriter, r *http.Request) (q *request, res Result, ok bool) {
	ipKey := ipLimitKey(limiter.ClientIP(r, g.o.TrustedProxies))
	if blocked, wait := g.o.FailedIP.Blocked(ipKey, g.o.FailedIPLimit); blocked {
		oauth.LeaveBody(w, r) // answered before its body is read
		return nil, g.fail(w, Result{}, outcomeLimited, oauth.ErrRateLimited.
			WithDescription("too many failed client authentications from this address").
			WithRetryAfter(wait)), false
	}
	q, oerr := g.readRequest(w, r)
	if oerr != nil {
		return nil, g.fail(w, Result{}, outcomeError, oerr), false
	}
	q.ipKey = ipKey
	return q, Result{ClientID: q.clientID}, true
}

// fail writes tokengw's own error answer.
func (g *Gateway) fail(w http.ResponseWriter, res Result, kind string, err *oauth.Error) Result {
	oauth.WriteError(w, err)
	res.Outcome, res.Err = kind, err
	return res
}

// allowConsumer takes one request from the presented client's bucket;
// false when it answered 429. The limit is taken before any upstream call
// or cache work.
func (g *Gateway) allowConsumer(w http.ResponseWriter, q *request) bool {
	if q.clientID == "" {
		return true
	}
	dec := g.o.Consumer.Allow(q.clientID, g.o.ConsumerLimit)
	dec.SetHeaders(w.Header(), "client")
	if !dec.Allowed {
		oauth.WriteError(w, oauth.ErrRateLimited.
			WithDescription("rate limit exceeded for this client").
			WithRetryAfter(dec.RetryAfter))
	}
	return dec.Allowed
}

// ipLimitKey is a caller's failed-authentication bucket: its IPv4 address
// or its IPv6 /64, as the local token endpoint keys it.
func ipLimitKey(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

func (g *Gateway) token(w http.ResponseWriter, r *http.Request) Result {
	q, res, ok := g.begin(w, r)
	if !ok {
		return res
	}
	grant := q.form.Get("grant_type")
	res.Grant = grant
	if grant == "" {
		return g.fail(w, res, outcomeError, oauth.ErrInvalidRequest.WithDescription("missing grant_type"))
	}
	if !g.allowConsumer(w, q) {
		res.Outcome, res.Err = outcomeLimited, oauth.ErrRateLimited
		return res
	}
	cacheable := r.Header.Get("DPoP") == ""
	var out outcome
	switch {
	case grant == "client_credentials" && cacheable:
		out = g.clientCredentials(r.Context(), q)
	case grant == "refresh_token" && cacheable && q.form.Get("refresh_token") != "":
		out = g.refresh(r.Context(), q)
	default:
		out = g.forward(r.Context(), q, g.o.TokenURL, grantLabel(grant))
	}
	g.write(w, q, out)
	res.Outcome, res.Err = out.kind, out.logError()
	return res
}

// grantLabel keeps the metrics' grant label to a known set.
func grantLabel(grant string) string {
	switch grant {
	case "client_credentials", "refresh_token", "authorization_code", "password",
		"urn:ietf:params:oauth:grant-type:token-exchange", "urn:ietf:params:oauth:grant-type:jwt-bearer",
		"urn:ietf:params:oauth:grant-type:device_code":
		return grant
	}
	return "other"
}

// outcome is what a request gets: a rendered success, a provider's
// pass-through answer, or an error of tokengw's.
type outcome struct {
	body  []byte // a success's JSON; shared by other callers, never modified
	reply *reply // passed through as the provider sent it
	err   *oauth.Error
	kind  string // the access log's outcome (outcome* below)
}

// The outcome of a request, as its access log line says it.
const (
	outcomeHit       = "hit"            // answered from the cache (this process or the store)
	outcomeMiss      = "miss"           // answered by its own upstream call
	outcomeCoalesced = "coalesced"      // answered by another request's upstream call
	outcomeReplay    = "replay"         // a stored refresh result, replayed
	outcomeForwarded = "forwarded"      // passed through, never cached
	outcomeUpstream  = "upstream_error" // the provider did not answer usefully: 503
	outcomeLimited   = "limited"        // 429: a rate limit
	outcomeError     = "error"          // refused by tokengw (bad request, store unavailable)
)

func (g *Gateway) write(w http.ResponseWriter, q *request, res outcome) {
	switch {
	case res.err != nil:
		oauth.WriteError(w, res.err)
	case res.reply != nil:
		if res.reply.status == http.StatusUnauthorized {
			g.o.FailedIP.Strike(q.ipKey, g.o.FailedIPLimit)
		}
		h := w.Header()
		for k, v := range res.reply.header {
			h[k] = v
		}
		w.WriteHeader(res.reply.status)
		_, _ = w.Write(res.reply.body)
	default:
		// RFC 6749 §5.1: Cache-Control no-store and Pragma no-cache.
		h := w.Header()
		h["Content-Type"], h["Cache-Control"], h["Pragma"] = hdrJSON, hdrNoStore, hdrNoCache
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(res.body)
	}
}

// logError is the error an outcome's log line names: tokengw's own, or
// the code of a provider's error passed through.
func (o outcome) logError() *oauth.Error {
	switch {
	case o.err != nil:
		return o.err
	case o.reply != nil && o.reply.status >= 400:
		return &oauth.Error{Code: providerErrorCode(o.reply.body), Status: o.reply.status}
	}
	return nil
}

// providerErrorCode is the "error" member of a provider's error answer
// (RFC 6749 §5.2), when it is a plain error code; anything else (not
// JSON, free text that could carry a secret) is "provider_error".
func providerErrorCode(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" || len(e.Error) > 64 {
		return "provider_error"
	}
	for _, c := range []byte(e.Error) {
		if (c < 'a' || c > 'z') && c != '_' {
			return "provider_error"
		}
	}
	return e.Error
}

// unavailable is the answer when the provider (or the store, where it
// must be consulted first) cannot serve: 503 with Retry-After.
func unavailable(desc string, cause error) outcome {
	return outcome{err: oauth.ErrTemporarilyUnavailable.WithDescription(desc).
		WithRetryAfter(time.Second).WithCause(cause), kind: outcomeUpstream}
}

// storeUnavailable is the answer when the store must be consulted and
// cannot be (a refresh token is not spent without its lease).
func storeUnavailable(cause error) outcome {
	return outcome{err: oauth.ErrTemporarilyUnavailable.WithDescription("the token store is unavailable; retry later").
		WithRetryAfter(time.Second).WithCause(cause), kind: outcomeError}
}

// call sends q to url and records it. A reply is a provider's answer below
// 500; err is errUnavailable.
func (g *Gateway) call(ctx context.Context, q *request, url, grant string) (reply, time.Time, error) {
	sent := g.now()
	rep, err := g.prov.post(ctx, url, q.r.Header, q.raw)
	d := g.now().Sub(sent)
	switch {
	case err != nil:
		g.m.call(grant, "unavailable", d)
		g.log.LogAttrs(ctx, slog.LevelWarn, "upstream: provider unavailable",
			slog.String("grant", grant), slog.String("client_id", q.clientID), slog.String("error", err.Error()))
	case rep.status == http.StatusOK:
		g.m.call(grant, "ok", d)
	default:
		g.m.call(grant, "client_error", d)
	}
	return rep, sent, err
}

// forward passes a request through unchanged and never caches the answer.
func (g *Gateway) forward(ctx context.Context, q *request, url, grant string) outcome {
	rep, _, err := g.call(ctx, q, url, grant)
	if err != nil {
		return unavailable("the identity provider is unavailable; retry later", err)
	}
	return outcome{reply: &rep, kind: outcomeForwarded}
}

// storeCtx is a context for one store operation that outlives the caller's
// cancellation (a flight serves other callers too).
func (g *Gateway) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), g.o.StoreTimeout)
}

// wait pauses for the poll interval or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
