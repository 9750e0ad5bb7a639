package store

import (
	"context"
	"time"
)

// SigningKey is one key of the JWT signing key ring (RFC 9068 access
// tokens). The private key is sealed by the caller (store.seal_keys), so a
// dump of the store holds no usable signing key.
//
// A key is published (in the JWKS) from the moment it is stored and signs
// from ActivateAt on; the key ring derives retirement and removal from the
// next key's ActivateAt, so adding a key is one row and never an update of
// another.
type SigningKey struct {
	// Slot is the rotation slot the key was added for ("initial",
	// "successor/<kid>", "manual/<kid>"); it is the row's key, and at most
	// one key ever holds a slot.
	Slot string
	// ID is the key id (kid): the RFC 7638 thumbprint of the public key.
	ID string
	// Alg is the JWS algorithm: ES256, EdDSA or RS256.
	Alg string
	// Sealed is the PKCS #8 private key, sealed by the caller.
	Sealed []byte
	// Public is the PKIX (DER) public key.
	Public     []byte
	CreatedAt  time.Time
	ActivateAt time.Time
}

// Keys persists the signing key ring. Implementations are safe for
// concurrent use; every process sharing the store sees the same ring.
type Keys interface {
	// SigningKeys returns every key of the ring, in no particular order.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// AddSigningKey stores k if no key holds k.Slot yet and reports whether
	// it did. Among concurrent callers for one slot, on any number of
	// processes sharing the store, exactly one adds its key.
	AddSigningKey(ctx context.Context, k SigningKey) (bool, error)
	// DeleteSigningKey removes the key of a slot; removing an absent slot is
	// not an error.
	DeleteSigningKey(ctx context.Context, slot string) error
}
