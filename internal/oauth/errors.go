// Package oauth is tokengw's protocol vocabulary: the RFC 6749 §5.2 error
// type and its sentinels, the §5.1 token response, scope sets, and the one
// function that writes every token-endpoint response.
//
// Errors are values that carry their RFC code and HTTP status. A hint (the
// error_description) is added with WithDescription, which returns a copy, so
// the sentinels are never mutated and stay matchable with errors.Is.
package oauth

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Error is an OAuth 2.0 error response (RFC 6749 §5.2). Its Code and Status
// are fixed by the sentinel it was derived from; Description is free text for
// the client and never carries internal detail.
type Error struct {
	// Code is the "error" parameter, e.g. "invalid_request".
	Code string
	// Description is the "error_description" parameter (may be empty).
	Description string
	// Status is the HTTP status code of the response.
	Status int
	// RetryAfter, when positive, is sent as a Retry-After header in whole
	// seconds (rounded up).
	RetryAfter time.Duration
	// BasicChallenge asks the writer to add WWW-Authenticate: Basic
	// (RFC 6749 §5.2: the client tried HTTP Basic authentication).
	BasicChallenge bool

	cause error // internal detail: logged, never written
}

// The sentinels. Match them with errors.Is; derive responses with
// WithDescription and friends.
var (
	// ErrInvalidRequest: "The request is missing a required parameter,
	// includes an unsupported parameter value (other than grant type),
	// repeats a parameter, ... or is otherwise malformed." (§5.2)
	ErrInvalidRequest = &Error{Code: "invalid_request", Status: http.StatusBadRequest}
	// ErrInvalidClient: "Client authentication failed" (§5.2), 401.
	ErrInvalidClient = &Error{Code: "invalid_client", Status: http.StatusUnauthorized}
	// ErrInvalidGrant is for grants other than client_credentials (later).
	ErrInvalidGrant = &Error{Code: "invalid_grant", Status: http.StatusBadRequest}
	// ErrUnauthorizedClient: "The authenticated client is not authorized to
	// use this authorization grant type." (§5.2)
	ErrUnauthorizedClient = &Error{Code: "unauthorized_client", Status: http.StatusBadRequest}
	// ErrUnsupportedGrantType: "The authorization grant type is not
	// supported by the authorization server." (§5.2)
	ErrUnsupportedGrantType = &Error{Code: "unsupported_grant_type", Status: http.StatusBadRequest}
	// ErrInvalidScope: "The requested scope is invalid, unknown, malformed,
	// or exceeds the scope granted by the resource owner." (§5.2)
	ErrInvalidScope = &Error{Code: "invalid_scope", Status: http.StatusBadRequest}
	// ErrInvalidTarget (RFC 8707 §2): "The requested resource is invalid,
	// missing, unknown, or malformed."
	ErrInvalidTarget = &Error{Code: "invalid_target", Status: http.StatusBadRequest}
	// ErrTemporarilyUnavailable is 503 with Retry-After (borrowed from §4.1.2.1
	// for the token endpoint: the store cannot take the token right now).
	ErrTemporarilyUnavailable = &Error{Code: "temporarily_unavailable", Status: http.StatusServiceUnavailable, RetryAfter: time.Second}
	// ErrServerError is the generic 500; its description never says why.
	ErrServerError = &Error{Code: "server_error", Status: http.StatusInternalServerError}
	// ErrRateLimited is 429 Too Many Requests (RFC 6585) with an OAuth-style body.
	ErrRateLimited = &Error{Code: "rate_limited", Status: http.StatusTooManyRequests}
	// ErrMethodNotAllowed is 405 for token-endpoint methods other than POST.
	ErrMethodNotAllowed = &Error{Code: "invalid_request", Status: http.StatusMethodNotAllowed, Description: "method not allowed: use POST"}
	// ErrRequestTooLarge is 413 for bodies above server.max_body_bytes.
	ErrRequestTooLarge = &Error{Code: "invalid_request", Status: http.StatusRequestEntityTooLarge, Description: "request body too large"}
)

// Error implements error. It includes the cause (for logs), never the body.
func (e *Error) Error() string {
	s := "oauth: " + e.Code
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Is matches two errors by code and status, so a copy made by
// WithDescription still matches its sentinel.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return e.Code == t.Code && e.Status == t.Status
}

// Unwrap returns the internal cause, if any.
func (e *Error) Unwrap() error { return e.cause }

// WithDescription returns a copy of e with the error_description set.
func (e *Error) WithDescription(desc string) *Error {
	c := *e
	c.Description = desc
	return &c
}

// WithCause returns a copy of e that wraps an internal cause. The cause is
// for logs: it is never written to the response body.
func (e *Error) WithCause(err error) *Error {
	c := *e
	c.cause = err
	return &c
}

// WithRetryAfter returns a copy of e that carries a Retry-After.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	c := *e
	c.RetryAfter = d
	return &c
}

// WithBasicChallenge returns a copy of e that asks for WWW-Authenticate: Basic.
func (e *Error) WithBasicChallenge() *Error {
	c := *e
	c.BasicChallenge = true
	return &c
}

// AsError converts any error into an *Error: an *Error in the chain is
// returned as is; anything else becomes server_error carrying it as the cause.
func AsError(err error) *Error {
	var oe *Error
	if errors.As(err, &oe) {
		return oe
	}
	return ErrServerError.WithCause(err)
}

// RetryAfter is the one rounding rule of every Retry-After tokengw sends
// (RFC 9110 §10.2.3 delay-seconds): whole seconds, rounded up, and at least
// 1 (0 would invite an immediate retry that is bound to fail).
func RetryAfter(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second > 0 { // rounding up by adding a second could overflow
		s++
	}
	return max(s, 1)
}

// RetryAfterSeconds renders d as a Retry-After value (RetryAfter).
func RetryAfterSeconds(d time.Duration) string { return strconv.FormatInt(RetryAfter(d), 10) }
