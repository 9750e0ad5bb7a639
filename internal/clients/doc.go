// Package clients is tokengw's client domain: who the OAuth clients
// (consumers) are and how they change.
//
//   - Spec is a registration as an operator writes it (the configuration
//     file's clients:, the admin API, `tokengw client`), and Spec.Client the
//     one validator all three call: RFC 6749 Appendix A.1 client ids, RFC
//     6749 §3.3 scope tokens, lifetimes, rate limits (limiter.Limit.Validate),
//     grant types.
//   - Registry answers "who is client X" on the token path: configured
//     clients first, then the store's, cached with an invalidation guard so
//     a change made while a lookup is in flight is never undone by it.
//   - Manager creates, lists, rotates and removes run-time clients and
//     revokes a client's tokens, dropping this process's cached copies.
//   - Fingerprint identifies a registration in reuse keys, so a rotated
//     secret or changed scopes stop reuse of what was issued before.
//
// The package knows nothing of HTTP: internal/server adapts it to the admin
// API, cmd/tokengw to the CLI.
package clients
