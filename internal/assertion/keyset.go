package assertion

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Limits of key sets.
const (
	// MaxJWKSBytes bounds an inline jwks value and a jwks_uri response.
	MaxJWKSBytes = 64 << 10
	// MaxKeys bounds the keys of one set.
	MaxKeys = 100
	// MinRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3: "A
	// key of size 2048 bits or larger MUST be used with these algorithms").
	MinRSABits = 2048
)

// algorithms are the JWS algorithms accepted for assertions: asymmetric
// only. "none" and the HMAC algorithms are never accepted, whatever a header
// says (RFC 8725 §3.1, §3.2): HS256 "signed" with a public key as the HMAC
// secret is the classic confusion attack.
func algorithms() [10]string {
	return [...]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

// Algorithms returns the JWS algorithms accepted for assertions (a new
// slice each call), for RFC 8414's *_auth_signing_alg_values_supported.
func Algorithms() []string { a := algorithms(); return a[:] }

// ErrKeySet marks an unusable key set (inline jwks, a jwks_uri document).
var ErrKeySet = errors.New("assertion: bad key set")

// keySetError is a key set ParseJWKS refuses: errors.Is ErrKeySet (and
// its cause, when there is one); detail says why without the prefix.
type keySetError struct {
	detail string
	cause  error
}

func (e *keySetError) Error() string { return ErrKeySet.Error() + ": " + e.detail }

func (e *keySetError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrKeySet}
	}
	return []error{ErrKeySet, e.cause}
}

// keySetErr formats a keySetError; cause (may be nil) is also wrapped.
func keySetErr(cause error, format string, a ...any) error {
	return &keySetError{detail: fmt.Sprintf(format, a...), cause: cause}
}

// Key is one public verification key of a set.
type Key struct {
	kid   string
	alg   string // the JWK's "alg", "" when it has none
	use   string // the JWK's "use": "sig" or ""
	pub   crypto.PublicKey
	thumb [32]byte // RFC 7638 SHA-256 thumbprint: the key's identity
}

// KeySet is an immutable parsed JWK Set (RFC 7517 §5) of public signing
// keys. Safe for concurrent use.
type KeySet struct {
	keys   []Key
	thumbs map[[32]byte]struct{}
}

// Len is the number of usable keys.
func (ks *KeySet) Len() int { return len(ks.keys) }

// JSON is the set as a canonical JWK Set: exactly the public keys it
// holds, each with its kty and public parameters, kid, alg and use when
// set, and nothing else (no duplicate or skipped key, no other member).
func (ks *KeySet) JSON() (string, error) {
	keys := make([]json.RawMessage, 0, len(ks.keys))
	for _, k := range ks.keys {
		raw, err := jose.JSONWebKey{Key: k.pub, KeyID: k.kid, Algorithm: k.alg, Use: k.use}.MarshalJSON()
		if err != nil {
			return "", fmt.Errorf("assertion: encoding a key set: %w", err)
		}
		keys = append(keys, raw)
	}
	out, err := json.Marshal(struct {
		Keys []json.RawMessage `json:"keys"`
	}{keys})
	if err != nil {
		return "", fmt.Errorf("assertion: encoding a key set: %w", err)
	}
	return string(out), nil
}

// Has reports whether the key with this thumbprint is in the set.
func (ks *KeySet) Has(thumb [32]byte) bool {
	_, ok := ks.thumbs[thumb]
	return ok
}

// find returns the key for a JWS header: by kid when the header names one,
// else the only key of the set that fits alg. ok is false when no key fits.
func (ks *KeySet) find(kid, alg string) (Key, bool) {
	var found Key
	n := 0
	for _, k := range ks.keys {
		if kid != "" && k.kid != kid {
			continue
		}
		if !fits(k, alg) {
			continue
		}
		found = k
		n++
	}
	return found, n == 1
}

// fits reports whether alg may be verified with k: the algorithm family
// matches the key type (and the curve), and the JWK's own "alg", when set,
// is alg.
func fits(k Key, alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return alg == "ES256"
		case elliptic.P384():
			return alg == "ES384"
		case elliptic.P521():
			return alg == "ES512"
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// ParseJWKS parses a JWK Set of public signing keys. strict (an inline
// jwks a client or issuer registers) refuses the whole set for any key it
// cannot use; otherwise (a jwks_uri document, which may also hold keys for
// encryption or of types this server does not use) such keys are skipped.
// Either way a private or symmetric key (any JWK holding a private or
// secret member: d, p, q, dp, dq, qi, oth, k), an RSA key below 2048 bits,
// more than MaxKeys keys, or a set with no usable key is an error wrapping
// ErrKeySet.
func ParseJWKS(data []byte, strict bool) (*KeySet, error) {
	if len(data) > MaxJWKSBytes {
		return nil, keySetErr(nil, "larger than %d bytes", MaxJWKSBytes)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, keySetErr(err, "not a JWK Set: %v", err)
	}
	if len(doc.Keys) > MaxKeys {
		return nil, keySetErr(nil, "more than %d keys", MaxKeys)
	}
	ks := &KeySet{thumbs: make(map[[32]byte]struct{}, len(doc.Keys))}
	for i, raw := range doc.Keys {
		k, err := parseKey(raw)
		if errors.Is(err, errPrivate) || (err != nil && strict) {
			return nil, keySetErr(err, "keys[%d]: %v", i, err)
		}
		if err != nil {
			continue
		}
		if _, dup := ks.thumbs[k.thumb]; dup {
			continue
		}
		ks.thumbs[k.thumb] = struct{}{}
		ks.keys = append(ks.keys, k)
	}
	if len(ks.keys) == 0 {
		return nil, keySetErr(nil, "no usable signing key")
	}
	return ks, nil
}

var (
	errPrivate     = errors.New("a private or symmetric key: register public keys only")
	errUnsupported = errors.New("unsupported key")
)

// privateMembers are the JWK members that hold private or secret key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2): a JWK with any
// of them, whatever its value, is not a public key.
var privateMembers = [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseKey parses one JWK into a usable public signing key.
func parseKey(raw json.RawMessage) (Key, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return Key{}, fmt.Errorf("%w: %w", errUnsupported, err)
	}
	var meta struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return Key{}, fmt.Errorf("%w: %w", errUnsupported, err)
	}
	// Checked before the full parse: a symmetric or private key is refused
	// as such even where unknown keys are skipped. The member names are
	// compared exactly, as JSON object members are named (encoding/json
	// would also match "D" for "d").
	if meta.Kty == "oct" {
		return Key{}, errPrivate
	}
	for _, m := range privateMembers {
		if _, ok := members[m]; ok {
			return Key{}, errPrivate
		}
	}
	if meta.Use != "" && meta.Use != "sig" {
		return Key{}, fmt.Errorf("%w: use %q (want sig)", errUnsupported, meta.Use)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return Key{}, fmt.Errorf("%w: %w", errUnsupported, err)
	}
	if !jwk.Valid() || !jwk.IsPublic() {
		return Key{}, fmt.Errorf("%w: invalid or not a public key", errUnsupported)
	}
	k := Key{kid: jwk.KeyID, alg: jwk.Algorithm, use: jwk.Use, pub: jwk.Key}
	switch pub := jwk.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < MinRSABits {
			return Key{}, fmt.Errorf("%w: RSA key of %d bits (at least %d)", errUnsupported, pub.N.BitLen(), MinRSABits)
		}
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return Key{}, fmt.Errorf("%w: EC curve", errUnsupported)
		}
	case ed25519.PublicKey:
	default:
		return Key{}, fmt.Errorf("%w: key type %T", errUnsupported, jwk.Key)
	}
	if k.alg != "" && !knownAlg(k.alg) {
		return Key{}, fmt.Errorf("%w: alg %q", errUnsupported, k.alg)
	}
	if k.alg != "" && !fits(k, k.alg) {
		return Key{}, fmt.Errorf("%w: alg %q does not fit the key type", errUnsupported, k.alg)
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil || len(tp) != 32 {
		return Key{}, fmt.Errorf("%w: thumbprint: %v", errUnsupported, err)
	}
	copy(k.thumb[:], tp)
	return k, nil
}

func knownAlg(alg string) bool {
	for _, a := range algorithms() {
		if a == alg {
			return true
		}
	}
	return false
}

// SourceError is a key source that cannot be registered. Field is "jwks"
// or "jwks_uri"; Reason says why, without the package prefix and the
// field, for callers that name the field themselves.
type SourceError struct {
	Field  string
	Reason string
	cause  error
}

func (e *SourceError) Error() string { return "assertion: " + e.Field + ": " + e.Reason }

// Unwrap returns the cause (ErrKeySet for a refused jwks).
func (e *SourceError) Unwrap() error { return e.cause }

// ValidateKeySource checks the key source of a private_key_jwt client or a
// trusted issuer as it is registered: exactly one of jwks (an inline JWK Set
// of public signing keys, which must parse completely) and jwksURI (an
// absolute https URL, or http when allowHTTP: assertions.allow_http_jwks_uri,
// for tests on loopback; no fragment, no user info). The config loader, the
// admin API and the CLI call it, so one rule holds everywhere. Errors are
// *SourceError.
func ValidateKeySource(jwks, jwksURI string, allowHTTP bool) error {
	_, err := NormalizeKeySource(jwks, jwksURI, allowHTTP)
	return err
}

// NormalizeKeySource validates as ValidateKeySource does and returns the
// jwks to store: the canonical JWK Set of the public keys it parsed
// (KeySet.JSON), so what a registration shows is exactly what is enforced;
// "" for a jwks_uri.
func NormalizeKeySource(jwks, jwksURI string, allowHTTP bool) (string, error) {
	switch {
	case jwks == "" && jwksURI == "":
		return "", &SourceError{Field: "jwks", Reason: "one of jwks or jwks_uri is required"}
	case jwks != "" && jwksURI != "":
		return "", &SourceError{Field: "jwks", Reason: "jwks and jwks_uri are exclusive: set one"}
	case jwks != "":
		ks, err := ParseJWKS([]byte(jwks), true)
		if err != nil {
			reason := err.Error()
			var kse *keySetError
			if errors.As(err, &kse) {
				reason = kse.detail
			}
			return "", &SourceError{Field: "jwks", Reason: reason, cause: err}
		}
		out, err := ks.JSON()
		if err != nil {
			return "", &SourceError{Field: "jwks", Reason: "cannot be encoded again", cause: err}
		}
		return out, nil
	}
	return "", ValidateJWKSURI(jwksURI, allowHTTP)
}

// ValidateJWKSURI checks a jwks_uri: absolute, https (http only with
// allowHTTP), a host, no user info and no fragment. Errors are
// *SourceError.
func ValidateJWKSURI(raw string, allowHTTP bool) error {
	bad := func(format string) error {
		return &SourceError{Field: "jwks_uri", Reason: fmt.Sprintf(format, raw)}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" {
		return bad("%q must be an absolute URL with a host, without user info or fragment")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	case u.Scheme == "http":
		return bad("%q must be https (assertions.allow_http_jwks_uri allows http, for tests)")
	default:
		return bad("%q: the scheme must be https")
	}
	return nil
}
