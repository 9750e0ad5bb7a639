package server

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"time"

	"github.com/tokengw/tokengw/internal/assertion"
	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/limiter"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/reuse"
	"github.com/tokengw/tokengw/internal/store"
)

// token serves POST /oauth2/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	info, ipKey, form, ok := s.begin(w, r)
	if !ok {
		return
	}
	grant := form.Get("grant_type")
	info.grant = grant
	switch {
	case grant == "":
		s.fail(w, info, oauth.ErrInvalidRequest.WithDescription("missing grant_type"))
		return
	case grant == assertion.GrantType && s.grant != nil:
		s.jwtBearer(w, r, info, form, ipKey)
		return
	case grant != clients.GrantClientCredentials:
		s.fail(w, info, oauth.ErrUnsupportedGrantType.WithDescription("supported: client_credentials"))
		return
	}

	client, err := s.authClient(w, r, form, ipKey)
	if err != nil {
		s.fail(w, info, err)
		return
	}
	info.clientID = client.ID
	if !clients.GrantAllowed(client, clients.GrantClientCredentials) {
		s.fail(w, info, oauth.ErrUnauthorizedClient.WithDescription("client_credentials is not allowed for this client"))
		return
	}

	lim := s.set.ClientLimit
	if client.Limit != nil {
		lim = limiter.Limit{Rate: client.Limit.Rate, Burst: client.Limit.Burst}
	}
	if !s.allowConsumer(w, info, client.ID, lim, "client") {
		return
	}
	scope, err := requestScope(form, clientScope(client), "client")
	if err != nil {
		s.fail(w, info, err)
		return
	}
	aud, err := s.audience(client, form.Values("resource"))
	if err != nil {
		s.fail(w, info, err)
		return
	}
	s.answer(w, r, info, reuse.Request{
		ClientID: client.ID, Scope: scope.String(), Lifetime: s.lifetime(client.TokenTTL),
		Fingerprint: client.Fingerprint, Audience: aud,
	})
}

// clientScope is the set of scopes client may ask for: the registry's
// when it derived one, else the tokens joined.
func clientScope(c store.Client) oauth.Scope {
	if !c.ScopeSet.Empty() || len(c.Scopes) == 0 {
		return c.ScopeSet
	}
	return oauth.NewScope(c.Scopes...)
}

// allowConsumer takes one request from a consumer's bucket (the client, or
// a jwt-bearer subject); false when it answered 429.
func (s *Server) allowConsumer(w http.ResponseWriter, info *reqInfo, key string, lim limiter.Limit, whose string) bool {
	dec := s.clientLimit.Allow(key, lim)
	dec.SetHeaders(w.Header(), "client")
	if !dec.Allowed {
		info.outcome = "limited"
		oauth.WriteError(w, oauth.ErrRateLimited.
			WithDescription("rate limit exceeded for this "+whose).
			WithRetryAfter(dec.RetryAfter))
		return false
	}
	return true
}

// requestScope is the scope a token request gets: the scope parameter,
// which must be a subset of allowed, normalised. RFC 6749 §3.3: "If the
// client omits the scope parameter when requesting authorization, the
// authorization server MUST either process the request using a pre-defined
// default value or fail the request indicating an invalid scope." The
// default is the whole allowed set (the client's, or the issuer's).
func requestScope(form oauth.Form, allowed oauth.Scope, whose string) (oauth.Scope, error) {
	if !form.Has("scope") {
		return allowed, nil
	}
	requested, valid := oauth.ParseScope(form.Get("scope"))
	switch {
	case !valid:
		return oauth.Scope{}, oauth.ErrInvalidScope.WithDescription("malformed scope")
	case !requested.SubsetOf(allowed):
		return oauth.Scope{}, oauth.ErrInvalidScope.WithDescription("requested scope exceeds the " + whose + "'s scope")
	case requested.Empty():
		return allowed, nil
	}
	return requested, nil
}

// lifetime is a token lifetime: ttl, or issuer.token_ttl when it is 0.
func (s *Server) lifetime(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return s.set.TokenTTL
	}
	return ttl
}

// answer hands out the token for req and writes the RFC 6749 §5.1
// response. A reused token's expires_in is floor(expires_at - now); a
// minted one's is ceil(expires_at - now), at most its lifetime: the full
// lifetime when the mint answers at once, less for a request that waited
// on a slow store or joined a mint another request of its key began
// earlier (issue 18's cluster test: such a request was told the full
// lifetime of a token minted two seconds before).
func (s *Server) answer(w http.ResponseWriter, r *http.Request, info *reqInfo, req reuse.Request) {
	res, err := s.tokens.Token(r.Context(), req)
	if err != nil {
		s.fail(w, info, storeError(err))
		return
	}
	info.outcome = res.Outcome.String()
	now := res.JudgedAt // an L1 hit: the reuser's clock read of a moment ago
	if now.IsZero() {
		now = s.now()
	}
	expiresIn := res.ExpiresIn(now)
	if res.Outcome == reuse.Minted {
		left := res.ExpiresAt.Sub(now)
		expiresIn = min(int64((left+time.Second-1)/time.Second), int64(req.Lifetime/time.Second))
		expiresIn = max(expiresIn, 0)
	}
	s.tokenOut.Write(w, oauth.TokenResponse{
		AccessToken: res.Token,
		TokenType:   "Bearer",
		ExpiresIn:   expiresIn,
		Scope:       req.Scope,
	})
}

// begin is the start of every POST endpoint: the caller-IP block check and
// the form. ok is false when a response was written already.
func (s *Server) begin(w http.ResponseWriter, r *http.Request) (info *reqInfo, ipKey netip.Addr, form oauth.Form, ok bool) {
	info = infoOf(w)
	ipKey, blocked := s.ipBlocked(w, r, info)
	if blocked {
		return info, ipKey, oauth.Form{}, false
	}
	form, oerr := s.readForm(w, r)
	if oerr != nil {
		s.fail(w, info, oerr)
		return info, ipKey, oauth.Form{}, false
	}
	return info, ipKey, form, true
}

// ipBlocked answers 429 to a caller that has spent its budget of failed
// authentications, whatever it sends now. It returns the caller's bucket key.
func (s *Server) ipBlocked(w http.ResponseWriter, r *http.Request, info *reqInfo) (netip.Addr, bool) {
	if !info.caller.IsValid() { // shed did not run (an endpoint it skips)
		info.caller = callerAddr(limiter.ClientIP(r, s.set.TrustedProxies))
	}
	ipKey := info.caller
	if blocked, wait := s.failedAuth.Blocked(ipKey, s.set.FailedAuthLimit); blocked {
		info.outcome = "limited"
		oauth.LeaveBody(w, r) // answered before its body is read
		oauth.WriteError(w, oauth.ErrRateLimited.
			WithDescription("too many failed client authentications from this address").
			WithRetryAfter(wait))
		return ipKey, true
	}
	return ipKey, false
}

// authClient authenticates the client of a request (RFC 6749 §2.3.1, or a
// client assertion, RFC 7523 §2.2). A secret verification is charged to
// the caller's failed-authentication bucket before it runs and refunded
// when it succeeds (clientauth.Budget), so concurrent wrong secrets cannot
// all be verified; a failure that ran no verification (no credentials, a
// refused assertion) is a strike of its own.
func (s *Server) authClient(w http.ResponseWriter, r *http.Request, form oauth.Form, ipKey netip.Addr) (store.Client, error) {
	info := infoOf(w)
	var client store.Client
	var err error
	if clientauth.UsesAssertion(form) {
		info.budget = authBudget{set: s.failedAuth, key: ipKey, lim: s.set.FailedAuthLimit}
		if client, err = s.authAssertion(r, form, &info.budget); err == nil {
			return client, nil
		}
	} else if creds, ferr := clientauth.FromRequest(r, form); ferr != nil {
		err = ferr
	} else {
		info.budget = authBudget{set: s.failedAuth, key: ipKey, lim: s.set.FailedAuthLimit}
		creds.Budget = &info.budget
		if client, err = s.auth.Authenticate(r.Context(), creds); err == nil {
			return client, nil
		}
	}
	if errors.Is(err, oauth.ErrInvalidClient) && !info.budget.taken {
		s.failedAuth.Strike(ipKey, s.set.FailedAuthLimit)
	}
	return store.Client{}, err
}

// authBudget is a request's clientauth.Budget: one token of the caller's
// failed-authentication bucket.
type authBudget struct {
	set   FailedAuthLimiter
	key   netip.Addr
	lim   limiter.Limit
	taken bool // a Take succeeded and was not refunded
}

func (b *authBudget) Take() (bool, time.Duration) {
	d := b.set.Take(b.key, b.lim)
	b.taken = d.Allowed
	return d.Allowed, d.RetryAfter
}

func (b *authBudget) Refund() {
	if b.taken {
		b.set.Refund(b.key, b.lim)
		b.taken = false
	}
}

// storeError maps a failure to issue a token: the store being unreachable
// or slow is 503 temporarily_unavailable with Retry-After, never 500.
func storeError(err error) error {
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, store.ErrClosed) {
		return oauth.ErrTemporarilyUnavailable.
			WithDescription("the token store is unavailable; retry later").
			WithRetryAfter(time.Second).
			WithCause(err)
	}
	return oauth.AsError(err)
}

func (s *Server) fail(w http.ResponseWriter, info *reqInfo, err error) {
	oe := oauth.AsError(err)
	info.outcome = "error"
	info.err = oe
	oauth.WriteError(w, oe)
}

// errBodyTimeout answers a body that did not arrive within
// server.timeouts.body (RFC 9110 §15.5.9); the connection is closed.
var errBodyTimeout = &oauth.Error{
	Code: "invalid_request", Status: http.StatusRequestTimeout,
	Description: "the request body did not arrive in time",
}

// errMalformedForm is the logged cause of an unparseable form body.
var errMalformedForm = errors.New("server: body is not valid application/x-www-form-urlencoded")

// readForm reads an application/x-www-form-urlencoded body of at most
// server.max_body_bytes (refusing a larger one without reading it whole)
// and rejects repeated parameters.
func (s *Server) readForm(w http.ResponseWriter, r *http.Request) (oauth.Form, *oauth.Error) {
	if oerr := s.forms.Admit(w, r); oerr != nil {
		return oauth.Form{}, oerr
	}
	// The body has its own short deadline (server.timeouts.body): a
	// caller that sends headers and then trickles the body holds a slot for
	// that long at most. The deadline is lifted once the body is in, so the
	// connection's background read cannot time out under a slow handler.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.set.Timeouts.Body))
	body, err := s.forms.Read(r.Body)
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		if errors.Is(err, oauth.ErrBodyTooLarge) {
			w.Header().Set("Connection", "close") // the rest of the body is not read
			return oauth.Form{}, oauth.ErrRequestTooLarge
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.Header().Set("Connection", "close")
			return oauth.Form{}, errBodyTimeout
		}
		return oauth.Form{}, oauth.ErrInvalidRequest.WithDescription("unreadable request body").WithCause(err)
	}
	form, shape, err := oauth.ParseRequestForm(body)
	if err != nil {
		// The parser's error quotes the offending bytes of the body (a bad
		// escape of a client_secret, say), so the log gets a fixed cause.
		return oauth.Form{}, oauth.ErrInvalidRequest.WithDescription("malformed form body").WithCause(errMalformedForm)
	}
	// RFC 6749 §3.2: "Request and response parameters MUST NOT be included
	// more than once." And: "Parameters sent without a value MUST be
	// treated as if they were omitted from the request." (An empty
	// client_secret next to HTTP Basic is then no second method.)
	if shape.Repeats { // else no walk
		if k, ok := form.Repeated("resource"); ok { // RFC 8707 §2: resource may repeat
			return oauth.Form{}, oauth.ErrInvalidRequest.WithDescription("parameter " + quoteParam(k) + " repeated")
		}
	}
	if shape.Empties {
		form.DropEmpty()
	}
	// Parameters in the query string of a token request are not the body's;
	// a client that sends a secret there is misconfigured.
	if r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil || q.Has("client_secret") {
			return oauth.Form{}, oauth.ErrInvalidRequest.WithDescription("credentials must not be sent in the query string")
		}
	}
	return form, nil
}

// quoteParam renders a parameter name for an error description, cut short
// and stripped of anything outside printable ASCII.
func quoteParam(k string) string {
	b := make([]byte, 0, 34)
	b = append(b, '"')
	for i := 0; i < len(k) && i < 32; i++ {
		if c := k[i]; c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			b = append(b, c)
		} else {
			b = append(b, '?')
		}
	}
	return string(append(b, '"'))
}
