// Package assertion verifies signed JWT assertions (RFC 7523): client
// authentication by private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9)
// and the jwt-bearer authorization grant (RFC 7523 §2.1), which exchanges a
// trusted issuer's JWT (a Kubernetes service-account token, a CI job's OIDC
// token) for an access token.
//
// # Checks, in order
//
// Verify takes them in this order and stops at the first refusal: size
// (MaxAssertionBytes); header (an asymmetric alg of Algorithms(), never
// "none", never HS*, no crit); principal (the Resolver: for a client, iss =
// sub = the client id, and a client_id parameter, when sent, equal to it;
// for the grant, a trusted iss and an allowed sub); key by kid (a jwks_uri
// is refetched for an unknown kid at most once per MinRefresh), whose type
// must fit the alg; signature (go-jose, with the one alg allowed); aud
// (single-valued: the issuer identifier or the token endpoint URL, or the
// issuer only with StrictAudience); exp required and not passed, nbf and
// iat not in the future beyond the clock skew, lifetime at most
// MaxLifetime; jti required for one-time assertions, and claimed last.
//
// # One-time assertions
//
// The jti claim is store.Assertions.ClaimAssertion, atomic across every
// replica on the store, keyed by (principal, SHA-256 of the jti) and kept
// until exp plus the skew. It is the last check, so a request that fails
// for any other reason (the store among them: 503) does not use up the
// assertion, and its retry is accepted. Copies of one jti arriving at one
// process together make one store call (claimFlights): the others wait and
// are replays, or share the first call's error when its outcome is
// unknown; fifty lightweight transactions on one Cassandra partition would
// time each other out.
//
// # The verified-JWT cache
//
// Verifying a signature costs the same every time. A verified assertion is
// remembered by SHA-256 of its exact compact bytes, looked up before any
// parsing, for no longer than its exp, together with the principal and the
// thumbprint of the key that verified it: an entry whose key has left the
// principal's key set is dropped and the JWT verified again. A hit skips
// parsing and the signature only; the principal, the audience, the times
// and the jti claim are checked on every use.
//
// # Key sets
//
// ParseJWKS reads JWK Sets of public signing keys (RSA of 2048 bits or
// more, EC P-256/384/521, Ed25519); Remote fetches a jwks_uri with a
// timeout, a size limit, Cache-Control max-age held within bounds, and
// keeps the last good set through fetch errors for MaxStale.
// ValidateKeySource is the one rule for a registration's jwks or jwks_uri.
package assertion
