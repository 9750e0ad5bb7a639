// Package store defines what tokengw persists and the small interfaces its
// storage drivers implement: bolt (embedded, the default), cassandra (shared by
// replicas) and memory (tests, throwaway runs). Every driver passes the
// conformance suite in store/storetest.
//
// The store never holds a bearer token in clear: tokens are keyed by
// SHA-256(token), and the copy kept for reuse (Current.Sealed) is sealed by
// the caller before it reaches the store.
//
// Times are kept to the millisecond; callers truncate before storing.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/tokengw/tokengw/internal/oauth"
)

// Errors every driver returns, matched with errors.Is.
var (
	// ErrNotFound: no such token, client or live reuse row.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a client with that id exists already.
	ErrExists = errors.New("store: already exists")
	// ErrUnavailable wraps transient failures (database unreachable,
	// timeout): the caller answers 503 and the operation may be retried.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrConflict: a conditional write found the record changed since it
	// was read (another writer, possibly on another replica, came first).
	// Read it again and re-apply the change.
	ErrConflict = errors.New("store: changed since it was read")
)

// Token is an issued access token, as persisted. The bearer value itself is
// never stored: Hash is SHA-256 of it.
type Token struct {
	Hash      []byte // SHA-256(bearer token), 32 bytes
	ClientID  string
	Scope     string // normalised scope string
	ReuseKey  string // the reuse slot it was issued for ("" when none)
	IssuedAt  time.Time
	ExpiresAt time.Time
	Revoked   bool
}

// Current is the reuse row: the token currently handed out for one reuse
// slot (ClientID, ReuseKey). It lives until ReuseUntil (a TTL in the
// databases that have one), after which a new token is minted.
type Current struct {
	ClientID   string
	ReuseKey   string
	TokenHash  []byte
	Sealed     []byte // the bearer token sealed by the caller (AES-GCM)
	Scope      string
	IssuedAt   time.Time
	ExpiresAt  time.Time
	ReuseUntil time.Time
}

// Limit is a per-client rate limit override.
type Limit struct {
	Rate  float64 // requests per second; 0 = unlimited
	Burst int
}

// Client is a registered OAuth client (a consumer).
type Client struct {
	ID         string
	SecretHash string   // PHC string (argon2id, bcrypt or pbkdf2-sha256)
	Scopes     []string // normalised: sorted, unique
	TokenTTL   time.Duration
	Limit      *Limit // nil: the default limit applies
	Introspect bool   // may call the introspection endpoint
	// GrantTypes are the grant types it may use; nil means the default set
	// (clients.DefaultGrantTypes). Only configured clients set it.
	GrantTypes []string
	// Resources are the RFC 8707 resource indicators the client may ask
	// for (a JWT's audience). Only configured clients set it so far.
	Resources []string
	// AuthMethod is the token_endpoint_auth_method as registered: "" (a
	// secret; also every row from before the field), "client_secret_basic"
	// or "client_secret_post" (a secret, either way), or
	// "private_key_jwt", which authenticates with assertions verified
	// against JWKS (an inline JWK Set, JSON) or JWKSURI.
	AuthMethod string
	JWKS       string
	JWKSURI    string
	CreatedAt  time.Time
	UpdatedAt  time.Time

	// Fingerprint is derived by the client registry (clients.Fingerprint)
	// from the fields above; drivers neither store nor read it.
	Fingerprint string
	// ScopeSet is Scopes as a normalised set, derived by the client
	// registry alongside Fingerprint, so a token request without a scope
	// parameter need not join them; drivers neither store nor read it.
	ScopeSet oauth.Scope
}

// Tokens persists issued tokens and the reuse rows. Implementations are safe
// for concurrent use.
type Tokens interface {
	// Issue persists tok. With cur nil, that is all, and it returns
	// (Current{}, false, nil).
	//
	// With cur non-nil (cur.TokenHash equal to tok.Hash), Issue claims the
	// reuse slot (cur.ClientID, cur.ReuseKey) for tok, exclusively: if no
	// live row holds the slot, it persists both and returns (*cur, true, nil);
	// if one does, it persists nothing and returns that row and false. Among
	// concurrent callers for one slot, on any number of processes sharing the
	// store, exactly one claims it.
	//
	// When Issue returns an error, tok must not be handed out.
	Issue(ctx context.Context, tok Token, cur *Current) (Current, bool, error)

	// Current returns the live reuse row of a slot, or ErrNotFound.
	Current(ctx context.Context, clientID, reuseKey string) (Current, error)

	// Token returns the token with this hash, revoked or not, or ErrNotFound
	// once it has expired (drivers may keep expired rows a little longer;
	// callers check ExpiresAt).
	Token(ctx context.Context, hash []byte) (Token, error)

	// Revoke marks a token revoked (kept until it expires, so introspection
	// says inactive) and deletes the reuse row that points at it, so it is
	// not handed out again. ErrNotFound when there is no such token.
	Revoke(ctx context.Context, hash []byte) error

	// ClearCurrents deletes every reuse row of a client (secret rotated,
	// scopes changed, client removed).
	ClearCurrents(ctx context.Context, clientID string) error

	// RevokeClient marks every live token of a client revoked and deletes the
	// client's reuse rows; it returns how many tokens it revoked. Unknown
	// client: 0, nil.
	//
	// Live means unexpired by the store's clock (tok.ClientID == clientID,
	// now < ExpiresAt). Each token is revoked as Revoke does it: kept, with
	// its expiry unchanged, so Token reports it Revoked until it expires.
	// Every reuse row of the client is deleted, as ClearCurrents does, so
	// none of the revoked tokens is handed out again; a later Issue claims
	// the slot anew. The count is the number of tokens this call turned
	// from live and unrevoked into revoked: tokens revoked before (by
	// Revoke or an earlier RevokeClient) are not counted again, so calling
	// it twice returns 0 the second time unless tokens were issued in
	// between. Tokens of other clients are untouched, the client's
	// registration (Clients) too.
	//
	// It revokes every token whose Issue returned before the call began.
	// A token issued concurrently may or may not be revoked; whatever it
	// revokes, it also leaves no reuse row pointing at it once it returns.
	// The drivers are free to do the work in several steps (a client may
	// hold millions of tokens): when it returns an error, the tokens
	// counted so far are revoked (the int says how many; it is not
	// undone) and the call may simply be repeated. A context that is
	// already done changes nothing and returns 0 and the context's error.
	RevokeClient(ctx context.Context, clientID string) (int, error)
}

// Clients is the run-time client registry.
type Clients interface {
	// Client returns one client or ErrNotFound.
	Client(ctx context.Context, id string) (Client, error)
	// Clients lists every client, ordered by id.
	Clients(ctx context.Context) ([]Client, error)
	// CreateClient adds a client; ErrExists when the id is taken.
	CreateClient(ctx context.Context, c Client) error
	// UpdateClient replaces a client if its stored UpdatedAt equals
	// ifUpdatedAt (to the millisecond): the UpdatedAt of the version the
	// caller read and changed. ErrNotFound when absent; ErrConflict when
	// another write came in between, which nothing of c overwrote. Among
	// concurrent writers that read one version, on any number of processes
	// sharing the store, at most one succeeds. Callers give every write a
	// new UpdatedAt, later than the one it replaces.
	UpdateClient(ctx context.Context, c Client, ifUpdatedAt time.Time) error
	// DeleteClient removes a client and its reuse rows; ErrNotFound when absent.
	DeleteClient(ctx context.Context, id string) error
}

// Store is everything a driver provides.
type Store interface {
	Tokens
	Clients
	Keys
	// Ping reports whether the store can serve requests (for /readyz).
	Ping(ctx context.Context) error
	// Close releases the store; further calls return ErrClosed.
	Close() error
}
