// Package clientauth answers "who is calling" at the token endpoint: it reads
// the client credentials of a request, verifies the secret against the stored
// hash, and remembers a verified pair so the slow hash runs once per process.
//
// # Credentials (RFC 6749 §2.3.1)
//
// FromRequest accepts the two methods of RFC 6749 §2.3.1: HTTP Basic
// (client_secret_basic), whose user name and password are form-decoded
// ("The client identifier is encoded using the application/x-www-form-urlencoded
// encoding algorithm per Appendix B, and the encoded value is used as the
// username"), and client_id / client_secret in the request body
// (client_secret_post). "The client MUST NOT use more than one authentication
// method in each request" (§2.3): a request that does is invalid_request.
// Failures are oauth.ErrInvalidClient carrying the Basic challenge, since
// §5.2 wants WWW-Authenticate on a 401 for the scheme the client used.
//
// # Secret hashes
//
// Secrets are stored as PHC strings: argon2id (HashSecret writes these; the
// OWASP minimum parameters by default), argon2i, bcrypt ($2a$, $2b$, $2y$)
// and pbkdf2-sha256 / pbkdf2-sha512 in PHC or passlib form. Every parameter a
// hash carries is capped (see the Max constants), so a hostile or mistyped
// hash in the configuration cannot make one verification take minutes or
// more than 2 GiB; ValidHash checks a hash at start-up.
//
// # Verified-credential cache
//
// The client_credentials grant is called on every token request, and the
// hashes are slow on purpose. After one successful verification the
// Authenticator remembers HMAC-SHA256(key, client id, secret, stored hash)
// under a per-process random key: the secret itself is never kept, a dump of
// the process memory does not yield a usable secret, and because the stored
// hash is part of the MAC a rotated secret stops matching without any
// invalidation. Only successful verifications insert, so a flood of wrong
// secrets can neither fill the cache nor evict the entries of good clients.
//
// Verifications that miss the cache run under a concurrency cap; callers that
// cannot get a slot in time are shed with 503 temporarily_unavailable rather
// than queued without bound.
package clientauth
