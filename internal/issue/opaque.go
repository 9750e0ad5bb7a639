// Package issue mints access tokens: opaque bearer tokens (256 bits from
// crypto/rand, base64url without padding, 43 characters) and JWT access
// tokens (RFC 9068) signed with the key ring (package keyring). Either way
// the store keys a token by SHA-256 of its bearer value (Hash).
package issue

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"time"
)

// TokenBytes is the entropy of an opaque token: 256 bits.
const TokenBytes = 32

// Claims is what a token is minted for. An opaque token carries none of it
// (the store does); a JWT carries all of it.
type Claims struct {
	ClientID string
	// Scope is the normalised granted scope.
	Scope string
	// Audience is the token's audience: the RFC 8707 resources the client
	// asked for, else the configured default.
	Audience            []string
	IssuedAt, ExpiresAt time.Time
}

// Opaque mints opaque tokens. The zero value reads crypto/rand. It is safe
// for concurrent use.
type Opaque struct {
	// Rand overrides the randomness source (tests only).
	Rand io.Reader
}

// Mint returns a new token and its SHA-256, the key the store keeps. The
// claims are not part of an opaque token.
func (o Opaque) Mint(Claims) (token string, hash []byte, err error) {
	var b [TokenBytes]byte
	if o.Rand != nil {
		_, err = io.ReadFull(o.Rand, b[:])
	} else {
		_, err = rand.Read(b[:])
	}
	if err != nil {
		return "", nil, fmt.Errorf("issue: random: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, Hash(token), nil
}

// Hash is the store key of a bearer token: SHA-256 of its bytes.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
