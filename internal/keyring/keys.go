package keyring

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// The JWS algorithms the ring signs with (RFC 9068 §2.1 requires RS256).
const (
	ES256 = "ES256"
	EdDSA = "EdDSA"
	RS256 = "RS256"
)

// Algorithms lists them, the default first.
func Algorithms() []string { return []string{ES256, EdDSA, RS256} }

// ErrAlgorithm is returned for an algorithm the ring does not sign with.
var ErrAlgorithm = errors.New("keyring: unsupported algorithm (ES256, EdDSA or RS256)")

// rsaBits is the modulus size of generated RS256 keys.
const rsaBits = 2048

// generate makes a private key for alg.
func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case RS256:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	}
	return nil, fmt.Errorf("%w: %q", ErrAlgorithm, alg)
}

// matches reports whether a parsed private key is of alg's type.
func matches(alg string, k crypto.Signer) bool {
	switch k.(type) {
	case *ecdsa.PrivateKey:
		return alg == ES256 && k.(*ecdsa.PrivateKey).Curve == elliptic.P256()
	case ed25519.PrivateKey:
		return alg == EdDSA
	case *rsa.PrivateKey:
		return alg == RS256 && k.(*rsa.PrivateKey).N.BitLen() >= rsaBits
	}
	return false
}

// publicJWK is the JWKS entry of a public key.
func publicJWK(pub crypto.PublicKey, kid, alg string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}
}

// keyID is the RFC 7638 JWK thumbprint (SHA-256, base64url) of pub.
func keyID(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("keyring: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// parsePrivate decodes a PKCS #8 private key of alg.
func parsePrivate(alg string, der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keyring: private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok || !matches(alg, s) {
		return nil, fmt.Errorf("keyring: private key is not an %s key", alg)
	}
	return s, nil
}

// parsePublic decodes a PKIX public key of alg.
func parsePublic(alg string, der []byte) (crypto.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("keyring: public key: %w", err)
	}
	ok := false
	switch p := k.(type) {
	case *ecdsa.PublicKey:
		ok = alg == ES256 && p.Curve == elliptic.P256()
	case ed25519.PublicKey:
		ok = alg == EdDSA
	case *rsa.PublicKey:
		ok = alg == RS256 && p.N.BitLen() >= rsaBits
	}
	if !ok {
		return nil, fmt.Errorf("keyring: public key is not an %s key", alg)
	}
	return k, nil
}

// newSigner makes the JWS signer of a key: header alg, kid and typ at+jwt
// (RFC 9068 §2.1), on every token.
func newSigner(alg, kid string, priv crypto.Signer) (jose.Signer, error) {
	opts := (&jose.SignerOptions{}).WithType("at+jwt")
	s, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(alg),
		Key:       jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: alg},
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("keyring: signer: %w", err)
	}
	return s, nil
}
