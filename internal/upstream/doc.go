// Package upstream is tokengw's upstream mode: tokengw becomes the token URL
// clients use in front of an existing identity provider, which stays the
// authority. Every grant is forwarded with the caller's own credentials;
// only two are answered from tokengw's cache:
//
//   - client_credentials: the provider's success is cached under a keyed
//     hash of the upstream, the credentials as presented (the Authorization
//     header, client_id, client_secret), the normalised scope and every
//     other form parameter (audience, resource, ...). A hit needs the very
//     same credentials and answers with expires_in = provider expiry − now −
//     upstream.expiry_margin, as long as the reuse policy (reuse.Policy)
//     allows. Concurrent misses for one key make one upstream call: one
//     flight per key in the process (singleflight), one lease per key in the
//     store across replicas (a lightweight transaction on Cassandra); the
//     other replicas wait for the result, within a bound.
//   - refresh_token: one upstream call per refresh token at a time across
//     replicas, and every concurrent caller gets the identical response.
//     The provider's success is stored, sealed, before anything else that
//     can fail, and replayed for upstream.refresh.replay_window and at most
//     upstream.refresh.max_replays times, only to a caller presenting the
//     same credentials and the same request fields. RFC 6749 §6 lets the
//     provider rotate refresh tokens (with reuse detection, a second use of
//     the old one is invalid_grant); replaying the first success is what
//     keeps a client's concurrent refreshes from logging it out.
//
// Everything else is forwarded unchanged and never cached, and so are
// requests carrying a DPoP proof (RFC 9449: one proof per request).
// Errors are never cached (but for one brief negative entry, negative.go:
// the provider's invalid_grant to one exact refresh request, for
// NegativeTTL): a provider 4xx goes back as the provider sent it
// (a 401 also charges the caller's failed-authentication budget); a timeout,
// a connection failure or a 5xx is 503 temporarily_unavailable with
// Retry-After. Revocation (RFC 7009) is forwarded to the provider and, once
// it accepts, drops every cached entry of the token.
//
// The store keeps no bearer token or secret in clear: keys are keyed hashes
// (DeriveCacheKey) and responses are sealed with package seal, bound to
// their key.
package upstream
